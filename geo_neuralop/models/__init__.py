"""Neural operator models and baselines."""

from geo_neuralop.models.amfno import AMFNO
from geo_neuralop.models.checkpoint import load_model, read_checkpoint, save_model
from geo_neuralop.models.deeponet import DeepONet
from geo_neuralop.models.fno import FNO
from geo_neuralop.models.local_no import LocalNO
from geo_neuralop.models.local_sfno import LocalSFNO
from geo_neuralop.models.lsm import LSM
from geo_neuralop.models.mesh_graph_net import MeshGraphNet
from geo_neuralop.models.mesh_no import MeshNO
from geo_neuralop.models.registry import (
    get_model,
    get_model_class,
    list_models,
    model_name,
    register_model,
)
from geo_neuralop.models.sfno import SFNO
from geo_neuralop.models.tfno import MGTFNO, TFNO
from geo_neuralop.models.transolver import Transolver
from geo_neuralop.models.unet import UNet

__all__: list[str] = [
    "AMFNO",
    "DeepONet",
    "FNO",
    "LocalNO",
    "LocalSFNO",
    "LSM",
    "MGTFNO",
    "MeshGraphNet",
    "MeshNO",
    "SFNO",
    "TFNO",
    "Transolver",
    "UNet",
    "get_model",
    "get_model_class",
    "list_models",
    "load_model",
    "model_name",
    "read_checkpoint",
    "register_model",
    "save_model",
]
