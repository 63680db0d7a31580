"""Experiments built on the toolkit: the CPU miniature of the paper (reproduce_miniature.py).

Modules: ``paper`` (the paper's numbers and rows), ``claims`` (the claims and goals tested on
paired seeds, with :mod:`keras_asc.evaluation.stats`), ``calibration`` (the
Table 1 analogue and the choice of λ_ICL), ``report`` (``docs/results_miniature.md``),
``driver`` (the resumable steps and the command line).
"""
