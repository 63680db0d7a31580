"""Build shim: the package metadata lives in pyproject.toml (one version, in keras_asc)."""

from setuptools import setup

setup()
