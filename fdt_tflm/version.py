"""The package version (one place: setup.cfg reads it too, if it names it; the CLI prints it)."""
__version__ = "0.1.0"
