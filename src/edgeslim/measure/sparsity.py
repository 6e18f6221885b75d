"""Sparsity: zeros in the weights (from the graph) and in activations (on real inputs).

Weight sparsity is over the weights of conv/linear layers (biases excluded). Activation
sparsity is over the tensors those layers consume, excluding the model input: exactly the
zeros a sparse kernel or accelerator could skip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeslim.measure.registry import family

if TYPE_CHECKING:
    from edgeslim.graph import GraphSummary
    from edgeslim.measure.runtime import RuntimeContext


@family(
    "weight_sparsity",
    "graph",
    [
        ("weight_sparsity", "fraction", "higher", "zeros among conv/linear weights"),
        ("weight_sparsity_by_layer", "fraction", "", "zeros among each layer's weights"),
    ],
)
def weight_sparsity(summary: GraphSummary) -> dict:
    total = sum(layer.weight_elements for layer in summary.layers)
    zeros = sum(layer.weight_zeros for layer in summary.layers)
    return {
        "weight_sparsity": zeros / total if total else 0.0,
        "weight_sparsity_by_layer": {
            layer.name: layer.weight_zeros / layer.weight_elements for layer in summary.layers
        },
    }


@family(
    "activation_sparsity",
    "runtime",
    [
        ("activation_sparsity", "fraction", "higher", "exact zeros in layer inputs on test data"),
        ("activation_sparsity_by_layer", "fraction", "", "exact zeros in each layer's input"),
    ],
    order=40,
)
def activation_sparsity(ctx: RuntimeContext) -> dict:
    if ctx.activation_names is None:  # the runtime's file cannot expose its activations
        ctx.info["activation_sparsity"] = "not measured: this runtime's file format"
        return {}
    if not ctx.activations_path or not ctx.activation_names:
        return {"activation_sparsity": 0.0, "activation_sparsity_by_layer": {}}
    session = ctx.session(ctx.activations_path)
    name = session.input_name
    samples = ctx.x[: ctx.settings["activation_samples"]]
    zeros = dict.fromkeys(ctx.activation_names, 0)
    sizes = dict.fromkeys(ctx.activation_names, 0)
    for batch, real in ctx.batches(session, samples, batch_size=64):
        outputs = session.run(ctx.activation_names, {name: batch})
        for tensor_name, value in zip(ctx.activation_names, outputs, strict=True):
            value = value[:real]
            zeros[tensor_name] += int(value.size - np.count_nonzero(value))
            sizes[tensor_name] += int(value.size)
    ctx.info["activation_samples"] = len(samples)
    total = sum(sizes.values())
    return {
        "activation_sparsity": sum(zeros.values()) / total if total else 0.0,
        "activation_sparsity_by_layer": {n: zeros[n] / sizes[n] for n in sizes if sizes[n]},
    }
