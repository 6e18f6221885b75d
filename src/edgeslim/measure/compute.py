"""Parameters and MACs, counted from the ONNX graph at batch size 1.

MACs are those of convolutions and matrix products (as thop and fvcore count them); pooling,
activations and additions are cheap next to them and left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeslim.measure.registry import family

if TYPE_CHECKING:
    from edgeslim.measure.graph import GraphSummary


@family(
    "compute",
    "graph",
    [
        ("params", "count", "lower", "stored weights and biases (Q/DQ scales excluded)"),
        ("nonzero_params", "count", "lower", "parameters that are not zero"),
        ("macs", "count", "lower", "multiply-accumulates of conv/linear layers at batch 1"),
        ("macs_by_layer", "count", "", "MACs of each conv/linear layer"),
    ],
)
def compute(summary: GraphSummary) -> dict:
    return {
        "params": summary.params,
        "nonzero_params": summary.nonzero_params,
        "macs": sum(layer.macs for layer in summary.layers),
        "macs_by_layer": {layer.name: layer.macs for layer in summary.layers},
    }
