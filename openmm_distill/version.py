"""The package version, in one place: pyproject.toml reads it, files the package writes record it."""
__version__ = "0.1.0"
