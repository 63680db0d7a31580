"""Inference: scene prediction for audio files, verified export, parameter and MAC counts.

Submodules are imported by full path (``keras_asc.inference.predict``, ``.export``,
``.complexity``) so that importing the package stays cheap.
"""
