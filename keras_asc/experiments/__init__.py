"""Experiments built on the toolkit: the CPU miniature of the paper.

Modules: paper (the paper's numbers), stats, claims, report, driver.
"""
