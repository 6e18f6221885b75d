"""Top-1 accuracy on the full test split (reported) and on the validation split (chosen on),
computed from the deployed runtime's outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeslim.measure.registry import family
from edgeslim.tasks.classification import top1

if TYPE_CHECKING:
    from edgeslim.measure.runtime import RuntimeContext


@family(
    "accuracy",
    "runtime",
    [
        ("accuracy", "fraction", "higher", "top-1 accuracy on the test split, on the runtime"),
        (
            "val_accuracy",
            "fraction",
            "higher",
            "top-1 accuracy on the validation split, on the runtime (what choices read)",
        ),
    ],
    order=30,
    task="classification",
)
def accuracy(ctx: RuntimeContext) -> dict:
    session = ctx.session()
    figures = {}
    for prefix, (x, y) in ctx.splits().items():
        predicted = top1(ctx.outputs(session, x))
        ctx.counted(prefix, "accuracy", len(predicted))
        figures[f"{prefix}accuracy"] = float((predicted == y).mean())
    return figures
