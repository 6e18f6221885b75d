"""Output that native runtimes and converters print from C++, past Python's sys.stdout."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable


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
