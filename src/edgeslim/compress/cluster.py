"""Weight clustering, Deep Compression's trained weight sharing (Han et al., ICLR 2016, sec. 3).

Each layer's non-zero weights are grouped by k-means (scikit-learn's, 1-D, started from
centroids spread linearly between the smallest and largest weight, which the paper found best
because it keeps the rare large weights); every weight becomes its centroid. The centroids are
then fine-tuned: a layer's weight is ``codebook[index]``, so the gradient a centroid receives is
the sum of its weights' gradients, as in the paper. Pruned weights (exact zeros) are not
clustered and stay zero, so ``clusters`` counts the zero too: a pruned layer with
``clusters: 16`` holds 15 shared values and zero, 4 bits an index.

Batch norm after a convolution is folded into it first (``torch.fx``'s conv-BN fusion): the
export folds it anyway, and a per-channel scale applied after clustering would turn a layer's
16 shared values into 16 per channel. The model that comes out has no such batch norms.

The exported file stays FP32, the weights dequantised (every runtime runs it as is);
``storage_coded_kb`` counts what storing it as codebooks and indices takes, entropy-coded, and the
step's result gives each layer's index bits and the plain packed size (indices at that many
bits plus an FP32 codebook).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.fx.experimental.optimization import fuse
from torch.nn.utils import parametrize

from edgeslim.compress import layers as L
from edgeslim.compress.finetune import tune
from edgeslim.compress.registry import StepContext, technique
from edgeslim.data.bundle import Dataset
from edgeslim.errors import ConfigError


class ClusterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    clusters: int = Field(16, ge=2, le=256, description="distinct values a layer keeps, zero too")
    layers: dict[str, int] = Field({}, description="clusters for named layers (the rest: clusters)")
    skip: list[str] = []
    skip_first: bool = False
    skip_last: bool = False
    epochs: int = Field(2, ge=0, description="fine-tuning of the shared values")
    lr: float = Field(1e-3, gt=0)
    seed: int = 0


def check(model: nn.Module, s: ClusterSettings, data: Dataset) -> None:
    L.check_layer_names(model, [*s.skip, *s.layers], "cluster")


def kmeans_1d(values: np.ndarray, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(centroids, index of each value) with linear initialisation."""
    from sklearn.cluster import KMeans  # scikit-learn: only a cluster step needs it

    distinct = np.unique(values)
    if len(distinct) <= clusters:  # already shared: nothing to move
        return distinct, np.searchsorted(distinct, values)
    start = np.linspace(values.min(), values.max(), clusters).reshape(-1, 1)
    fitted = KMeans(clusters, init=start, n_init=1, random_state=seed).fit(values.reshape(-1, 1))
    return fitted.cluster_centers_.reshape(-1), fitted.labels_


class SharedWeights(nn.Module):
    """A parametrization: the layer's weight is ``codebook[index]`` where not pruned, else 0."""

    def __init__(self, weight: torch.Tensor, clusters: int, seed: int) -> None:
        super().__init__()
        keep = weight != 0
        shared = clusters - int(not bool(keep.all()))  # the zero takes one value
        centroids, labels = kmeans_1d(weight[keep].double().numpy(), shared, seed)
        index = torch.zeros(weight.shape, dtype=torch.long)
        index[keep] = torch.from_numpy(labels.astype(np.int64))
        self.codebook = nn.Parameter(torch.from_numpy(centroids).to(weight.dtype))
        self.register_buffer("index", index)
        self.register_buffer("keep", keep)

    def forward(self, _original: torch.Tensor) -> torch.Tensor:
        return torch.where(self.keep, self.codebook[self.index], 0.0)


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """The model with each conv/linear -> batch norm pair fused into one layer (eval-mode
    statistics), as the export would fuse them; the model itself where it has no batch norm."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model

    try:
        return fuse(model.eval())
    except Exception as exc:  # torch.fx raises many kinds on code it cannot trace
        raise ConfigError(
            "cluster: the model has batch norm, which the export folds into the layer before "
            "it, rescaling each channel and undoing the shared values; folding it first needs "
            f"torch.fx to trace the model, which failed: {type(exc).__name__}: {exc}"
        ) from exc


@technique("cluster", ClusterSettings, check=check)
def apply(model: nn.Module, data: Dataset, s: ClusterSettings, ctx: StepContext) -> dict:
    given, model = model, fold_batch_norm(model)
    chosen = {
        name: layer
        for name, layer in L.select_layers(model, s.skip, s.skip_first, s.skip_last).items()
        if bool(layer.weight.detach().any())  # a layer pruned away has nothing to share
    }
    for name, layer in chosen.items():
        with torch.no_grad():
            shared = SharedWeights(layer.weight.detach(), s.layers.get(name, s.clusters), s.seed)
        parametrize.register_parametrization(layer, "weight", shared)
    try:
        if s.epochs:  # the original weights get no gradient, so the optimiser leaves them
            tune(model, data, ctx, epochs=s.epochs, lr=s.lr, desc="cluster", keep_sparsity=False)
    finally:
        for layer in chosen.values():
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    per_layer = {}
    for name, layer in chosen.items():
        values = int(torch.unique(layer.weight.detach()).numel())
        bits = max(1, math.ceil(math.log2(values)))
        packed = math.ceil(layer.weight.numel() * bits / 8) + 4 * values
        per_layer[name] = {"values": values, "bits": bits, "packed_bytes": packed}
    return {
        **({"model": model, "batch_norm_folded": True} if model is not given else {}),
        "clustered_layers": per_layer,
        "packed_kb": round(sum(v["packed_bytes"] for v in per_layer.values()) / 1024, 2),
        "sparsity_reached": round(L.sparsity(L.weighted_layers(model)), 4),
    }
