"""What the LiteRT and TFLite Micro sessions share: a full-integer model takes and gives 8-bit
tensors, so a float sample is quantized with the input's scale and zero point on the way in and
the output dequantized on the way out, as the application on the device would do.

The device does that in C, in nanoseconds; numpy takes tens of microseconds, more than a small
INT8 model's whole inference. So the sessions split it off: ``prepared`` quantizes a feed once,
``run_prepared`` is the runtime's own set-invoke-get on it, and the latency loop times only that
(``runtimes.timed_call``)."""

from __future__ import annotations

import numpy as np


def to_input(x: np.ndarray, dtype: type, scale: float, zero_point: int) -> np.ndarray:
    if dtype == np.float32 or x.dtype == dtype:  # float, or quantized already
        return x
    info = np.iinfo(dtype)
    q = np.round(x / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def from_output(y: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    if y.dtype == np.float32:
        return y
    return (y.astype(np.float32) - zero_point) * scale
