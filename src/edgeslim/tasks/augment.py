"""Image augmentation as tensors: random moves and mirrors, drawn from the training loop's own
generator so a seeded run augments the same way every time. Below the tasks, which decide what
a move means for their targets (a detection's boxes move with the image); torch-only, so the
tasks import it inside the training-time functions that use it (the measuring worker on a board
imports the tasks without torch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_moves(
    n: int, shift: int, flip: bool, generator: torch.Generator
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Per image: its row and column offsets into the padded image (``(n, 1)`` each, in
    ``0..2 * shift``) and whether it is mirrored; None for what is not asked."""
    dy = dx = mirrored = None
    if shift:
        dy, dx = torch.randint(0, 2 * shift + 1, (2, n, 1), generator=generator)
    if flip:
        mirrored = torch.rand(n, generator=generator) < 0.5
    return dy, dx, mirrored


def move_images(
    x: torch.Tensor,
    shift: int,
    dy: torch.Tensor | None,
    dx: torch.Tensor | None,
    mirrored: torch.Tensor | None,
) -> torch.Tensor:
    """Images moved by ``(shift - dx, shift - dy)`` pixels (edges repeated), then mirrored
    left to right where ``mirrored``."""
    n, c, h, w = x.shape
    if dy is not None:
        padded = F.pad(x, (shift, shift, shift, shift), mode="replicate")
        rows = (dy + torch.arange(h))[:, None, :, None]
        cols = (dx + torch.arange(w))[:, None, None, :]
        x = padded[
            torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols
        ]
    if mirrored is not None:
        x = torch.where(mirrored[:, None, None, None], x.flip(-1), x)
    return x
