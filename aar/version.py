"""The version, defined once: ``pyproject.toml`` reads it here and ``aar.__version__`` re-exports it."""

__version__ = "0.1.0"
