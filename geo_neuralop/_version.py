"""The package version, in a module of its own: lower floors never import the package root."""

__version__ = "0.2.0"
