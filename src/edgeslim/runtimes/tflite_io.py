"""What the LiteRT and TFLite Micro sessions share: a full-integer model takes and gives 8-bit
tensors, so a float sample is quantized with the input's scale and zero point on the way in and
the output dequantized on the way out, as the application on the device would do."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable

import numpy as np


def to_input(x: np.ndarray, dtype: type, scale: float, zero_point: int) -> np.ndarray:
    if dtype == np.float32:
        return x
    info = np.iinfo(dtype)
    q = np.round(x / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def from_output(y: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    if y.dtype == np.float32:
        return y
    return (y.astype(np.float32) - zero_point) * scale


def c_output(call: Callable[[], object]) -> str:
    """What ``call`` prints from C++ (TFLite Micro's reports, the converter's MLIR warnings),
    which goes to the process's file descriptors, past Python's sys.stdout."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            call()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        sink.seek(0)
        return sink.read().decode(errors="replace")
