"""Parameters and MACs, counted from the ONNX graph at batch size 1.

MACs are those of convolutions and matrix products (as thop and fvcore count them); pooling,
activations and additions are cheap next to them and left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeslim.measure.registry import family

if TYPE_CHECKING:
    from edgeslim.graph import GraphSummary


@family(
    "compute",
    "graph",
    [
        ("params", "count", "lower", "stored weights and biases (Q/DQ scales excluded)"),
        ("nonzero_params", "count", "lower", "parameters that are not zero"),
        (
            "macs",
            "count",
            "lower",
            "multiply-accumulates at batch 1: conv/linear layers and activation x activation "
            "products (attention's QK^T and attention x V)",
        ),
        ("macs_by_layer", "count", "", "MACs of each conv/linear layer and activation product"),
    ],
)
def compute(summary: GraphSummary) -> dict:
    return {
        "params": summary.params,
        "nonzero_params": summary.nonzero_params,
        "macs": sum(op.macs for op in (*summary.layers, *summary.products)),
        "macs_by_layer": {op.name: op.macs for op in (*summary.layers, *summary.products)},
    }
