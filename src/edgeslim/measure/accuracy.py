"""Top-1 accuracy on the full test split, computed from the deployed runtime's outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeslim.measure.registry import family
from edgeslim.tasks.classification import top1

if TYPE_CHECKING:
    from edgeslim.measure.runtime import RuntimeContext


@family(
    "accuracy",
    "runtime",
    [
        ("accuracy", "fraction", "higher", "top-1 accuracy on the test split, on the runtime"),
    ],
    order=30,
    task="classification",
)
def accuracy(ctx: RuntimeContext) -> dict:
    session = ctx.session()
    name = session.input_name
    predictions = []
    for batch, real in ctx.batches(session, ctx.x):
        predictions.append(top1(session.run(None, {name: batch})[0][:real]))
    predicted = np.concatenate(predictions)
    ctx.info["accuracy_samples"] = len(predicted)
    return {"accuracy": float((predicted == ctx.y).mean())}
