"""Datasets, storage and loaders."""

from geo_neuralop.data.predictions import Predictions, load_predictions, save_predictions

__all__ = ["Predictions", "load_predictions", "save_predictions"]
