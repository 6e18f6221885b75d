"""The runtimes a model can be measured on, each a small module registered by name.

Kept import-light like ``edgeslim.measure``: the worker imports only the runtime it runs.
"""

from edgeslim.runtimes.registry import (
    RUNTIMES,
    Runtime,
    Session,
    check_runtime,
    fixed_batch,
    onnx_outputs,
    outputs,
    runtime,
    timed_call,
)

__all__ = [
    "RUNTIMES",
    "Runtime",
    "Session",
    "check_runtime",
    "fixed_batch",
    "onnx_outputs",
    "outputs",
    "runtime",
    "timed_call",
]
