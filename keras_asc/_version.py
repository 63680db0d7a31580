"""The version of keras-asc (read by ``pyproject.toml`` and written into saved presets)."""

__version__ = "0.1.0"
