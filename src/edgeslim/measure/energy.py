"""Energy per inference: an ESTIMATE from MACs and memory traffic, not a measurement.

Per-operation energies at 45 nm, 0.9 V, from M. Horowitz, "Computing's energy problem (and
what we can do about it)", ISSCC 2014, as tabulated in Han et al., "Learning both Weights and
Connections for Efficient Neural Networks", NeurIPS 2015 (Table 1). The model:
  compute  = sum over layers of MACs x (multiply + add energy) of the layer's arithmetic type
  weights  = every stored weight byte read once from DRAM (the pessimistic, off-chip case)
  activations = every activation byte written once and read once from on-chip SRAM
Real devices differ (process node, caches, sparse kernels); use it to compare variants, not as
a battery-life figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeslim.measure.registry import family

if TYPE_CHECKING:
    from edgeslim.graph import GraphSummary

SOURCE = "Horowitz ISSCC 2014, 45 nm (via Han et al. NeurIPS 2015); estimate"
PJ_PER_MAC = {  # multiply + add
    "fp32": 3.7 + 0.9,
    "fp16": 1.1 + 0.4,
    "int8": 0.2 + 0.03,
}
PJ_PER_BYTE_DRAM = 640.0 / 4  # 640 pJ per 32-bit DRAM access
PJ_PER_BYTE_SRAM = 5.0 / 4  # 5 pJ per 32-bit SRAM access


@family(
    "energy",
    "graph",
    [
        ("energy_mj", "mJ", "lower", "estimated energy per inference (Horowitz 2014 table)"),
        ("energy_breakdown_mj", "mJ", "", "estimate split into compute, weights and activations"),
    ],
)
def energy(summary: GraphSummary) -> dict:
    compute_pj = sum(
        op.macs * PJ_PER_MAC[op.compute] for op in (*summary.layers, *summary.products)
    )
    weights_pj = summary.weight_bytes * PJ_PER_BYTE_DRAM
    activation_bytes = sum(t.nbytes or 0 for t in summary.activations)
    activations_pj = 2 * activation_bytes * PJ_PER_BYTE_SRAM
    breakdown = {"compute": compute_pj, "weights": weights_pj, "activations": activations_pj}
    return {
        "energy_mj": sum(breakdown.values()) * 1e-9,
        "energy_breakdown_mj": {k: v * 1e-9 for k, v in breakdown.items()},
    }
