"""Ctrl-C that always stops a run, and a file size limit that says so instead of killing it.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when SIGINT arrives.
Inside a destructor or a weak-reference callback (ONNX Runtime's quantizer leaves plenty for the
garbage collector) that exception cannot propagate: Python prints ``Exception ignored in ...``
and carries on, and the interrupt is lost. So, while ``handled()`` is active, SIGINT is
*recorded* first; it is raised at once unless the handler finds itself inside such a callback,
in which case it asks again a moment later from ordinary code. Whatever swallows the exception
all the same, ``check()`` raises it again at the next safe point (the runner calls it after each
build, before each measurement and each candidate).

SIGXFSZ (a write past ``ulimit -f``) kills the process by default; during a run it is ignored,
so the write fails with ``EFBIG`` and the run ends with its one-line disk-full error.

Bottom layer: the standard library only.
"""

from __future__ import annotations

import _thread
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

RETRY_S = 0.05  # how soon an interrupt that arrived inside a finalizer is delivered again

_requested = False  # SIGINT arrived during handled()
_raised = False  # and KeyboardInterrupt was raised for it (which does not mean it propagated)
_active = False
# held while a retry decides to deliver, and while handled() ends: a retry never lands after
# the previous handler is back (Python's own would raise KeyboardInterrupt outside the block)
_delivery = threading.Lock()


def requested() -> bool:
    """Whether Ctrl-C was pressed during the current ``handled()`` block."""
    return _requested


def check() -> None:
    """A safe point: raise ``KeyboardInterrupt`` if Ctrl-C was pressed, even when the exception
    raised at the time was swallowed (by a destructor, or a library's broad ``except``)."""
    global _raised
    if _requested:
        _raised = True  # a retry still pending must not raise it a second time
        raise KeyboardInterrupt


def in_finalizer(frame: FrameType | None) -> bool:
    """Whether code on this stack runs from a destructor or a weak-reference callback, where a
    raised exception is printed and ignored instead of propagating."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or code.co_filename.endswith(("weakref.py", "_weakrefset.py")):
            return True
        frame = frame.f_back
    return False


def again() -> None:
    """Deliver the recorded interrupt once more (from a timer thread)."""
    with _delivery:
        if _active and _requested and not _raised:
            _thread.interrupt_main(signal.SIGINT)


def on_sigint(signum: int, frame: FrameType | None) -> None:
    global _requested, _raised
    if not _active:  # a retry tripped just as handled() ended: that interrupt was dealt with
        return
    _requested = True
    if in_finalizer(frame):  # raising here would be lost: try again from ordinary code
        timer = threading.Timer(RETRY_S, again)
        timer.daemon = True
        timer.start()
        return
    _raised = True
    raise KeyboardInterrupt


@contextmanager
def handled() -> Iterator[None]:
    """Record every Ctrl-C for ``check()`` while the block runs, and let a write past the file
    size limit fail with ``EFBIG``; the previous handlers come back afterwards. Ctrl-C pressed
    during the block is raised at its end if nothing raised it before. Outside the main thread
    (where signal handlers cannot be set) it changes nothing; a process that ignores SIGINT (a
    background job, ``nohup``) goes on ignoring it."""
    global _requested, _raised, _active
    if _active or threading.current_thread() is not threading.main_thread():
        yield  # nested in another handled() block (which checks at its end), or not main
        return
    previous_int = signal.getsignal(signal.SIGINT)
    ours = previous_int not in (signal.SIG_IGN, None)  # None: set from C, not restorable
    if ours:
        signal.signal(signal.SIGINT, on_sigint)
    previous_xfsz = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _requested = _raised = False
    _active = True
    try:
        yield
        check()  # the last safe point: an interrupt swallowed since the last check
    finally:
        with _delivery:
            _active = False
        _requested = _raised = False
        if ours:
            signal.signal(signal.SIGINT, previous_int)
        if previous_xfsz is not None:
            signal.signal(signal.SIGXFSZ, previous_xfsz)
