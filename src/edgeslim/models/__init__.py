"""Model zoo of edge reference networks and safe loading of a user's model."""

from edgeslim.models import (  # noqa: F401 (registration)
    detection,
    lenet,
    mlp,
    mobilenet,
    resnet,
    small_cnn,
    vit,
)
from edgeslim.models.loading import load_model, load_state_dict, load_weights
from edgeslim.models.registry import ZOO, build, models_for, register_model

__all__ = [
    "ZOO",
    "build",
    "load_model",
    "load_state_dict",
    "load_weights",
    "models_for",
    "register_model",
]
