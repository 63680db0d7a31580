"""Evaluation: scene metrics, paper tables, statistics of seeds, the device probe and plots.

Submodules are imported by full path (``keras_asc.evaluation.metrics`` ...); this package imports
nothing heavy so that ``metrics`` and ``tables`` stay usable without TensorFlow.
"""
