"""Model zoo of edge reference networks and safe loading of a user's model."""

from edgeslim.models import lenet, mlp, mobilenet, resnet, small_cnn, vit  # noqa: F401 (registration)
from edgeslim.models.loading import load_model, load_state_dict, load_weights
from edgeslim.models.registry import ZOO, build, register_model

__all__ = ["ZOO", "build", "load_model", "load_state_dict", "load_weights", "register_model"]
