"""Detection quality and end-to-end latency on the deployed runtime (numpy and pycocotools).

mAP comes from pycocotools' COCOeval over the whole test split; precision and recall count
boxes scoring at least ``SCORE_THRESHOLD`` (IoU >= 0.5, same class, one-to-one). End-to-end
latency is what a car's camera waits for: the network, then decoding and NMS of the boxes
scoring at least the threshold, at batch 1. The latency loop times both (``after_network``):
each end-to-end time is a network time of the same call plus its decoding, so the end-to-end
figures are never below the network's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeslim.figures import VALIDATION
from edgeslim.measure.latency import Finish, after_network, first_output
from edgeslim.measure.registry import family
from edgeslim.runtimes import Session
from edgeslim.tasks import boxes as B
from edgeslim.tasks import task_of
from edgeslim.tasks.detection import EXAMPLES, SCORE_THRESHOLD

# the figures measured on each split (the test split's are reported, the validation split's
# chosen on)
QUALITY = ("map50", "map", "precision", "recall")

if TYPE_CHECKING:
    from edgeslim.measure.runtime import RuntimeContext


@after_network("detection")
def decode_boxes(ctx: RuntimeContext, session: Session) -> Finish:
    """A deployed pipeline keeps the boxes it acts on only: those scoring at least the
    threshold, decoded from the network's answer (dequantized, for a full-integer model)."""
    task = task_of(ctx.spec)

    def finish(answer):
        return task.decode(first_output(session, answer)[:1], min_score=SCORE_THRESHOLD)

    return finish


@family(
    "detection",
    "runtime",
    [
        ("map50", "fraction", "higher", "mAP at IoU 0.5 on the test split, on the runtime"),
        ("map", "fraction", "higher", "mAP averaged over IoU 0.5:0.95 (COCO's), on the runtime"),
        ("precision", "fraction", "higher", "matched / found boxes at the score threshold"),
        ("recall", "fraction", "higher", "matched / true boxes at the score threshold"),
        *(
            (f"{VALIDATION}{name}", "fraction", "higher", f"{name} on the validation split")
            for name in QUALITY
        ),
        # timed by the latency family, in the loop that times the network (decode_boxes)
        ("latency_e2e_p50_ms", "ms", "lower", "median batch-1 latency with decoding and NMS"),
        ("latency_e2e_p95_ms", "ms", "lower", "95th percentile latency with decoding and NMS"),
        ("example_detections", "boxes", "", "boxes found on the first test images (report)"),
    ],
    order=30,
    task="detection",
)
def detection(ctx: RuntimeContext) -> dict:
    task = task_of(ctx.spec)
    session = ctx.session()
    figures: dict = {}
    for prefix, (x, y) in ctx.splits().items():
        outputs = ctx.outputs(session, x)
        found = task.decode(outputs)
        scores = B.coco_map(found, y, task.spec.num_classes)
        scores["precision"], scores["recall"] = B.precision_recall(found, y, SCORE_THRESHOLD)
        figures.update({f"{prefix}{name}": scores[name] for name in QUALITY})
        ctx.counted(prefix, "detection", len(outputs))
        if prefix:
            continue
        ctx.info.update(
            detection_layout=B.layout(outputs.shape[1], task.spec.num_classes),
            detection_threshold=SCORE_THRESHOLD,
        )
        shown = [d[d[:, 4] >= SCORE_THRESHOLD].round(3).tolist() for d in found[:EXAMPLES]]
        figures["example_detections"] = shown
    return figures
