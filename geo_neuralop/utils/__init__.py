"""Small helpers shared across subpackages."""

from geo_neuralop.utils.atomic import atomic_path

__all__ = ["atomic_path"]
