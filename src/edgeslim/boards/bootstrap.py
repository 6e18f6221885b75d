"""The program the host runs on a board over SSH (``python -c SOURCE WORKDIR TIMEOUT``).

It uses the standard library only and is sent as source, so a board needs Python, numpy and
the runtime and nothing else. It speaks JSON lines on stdout:

1. it takes the board's lock (a ``flock`` on ``WORKDIR/edgeslim-board.lock``: two hosts, or two
   search workers, never measure on one board at once) without waiting, and says ``busy`` or
   ``locked``;
2. it reads the payload from stdin (a decimal byte count, a newline, a tar archive of the
   worker, the model, the samples and the request) into a fresh temporary folder;
3. it runs the worker there, and says ``done`` with its exit code, the last of its stderr, and
   its result; the folder is removed whatever happens.

stdin stays open while the worker runs: the host holding the connection is the lifeline. When it
closes (the host gave up, or the connection dropped) the worker's process group is killed and
the folder removed, so a lost connection leaves no worker running and no files behind.
"""

import contextlib
import fcntl
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading

LOCK_FILE = "edgeslim-board.lock"
FOLDER_PREFIX = "edgeslim-run-"


def say(kind, **fields):
    sys.stdout.write(json.dumps(dict(fields, kind=kind)) + "\n")
    sys.stdout.flush()


def read_exactly(stream, size):
    chunks, left = [], size
    while left:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the host closed the connection before the payload was complete")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def unpack(payload, folder):
    with tarfile.open(fileobj=io.BytesIO(payload)) as archive:
        for member in archive.getmembers():  # plain files, inside the folder, nothing else
            name = os.path.normpath(member.name)
            if not member.isfile() or name.startswith(("..", "/")) or os.sep in name:
                raise ValueError(f"refused payload entry {member.name!r}")
        if hasattr(tarfile, "data_filter"):
            archive.extractall(folder, filter="data")
        else:  # Python < 3.12 without the backported filters: the names were checked above
            archive.extractall(folder)


def measure(folder, timeout):
    env = dict(os.environ, PYTHONPATH=os.path.join(folder, "worker.zip"), PYTHONNOUSERSITE="1")
    with open(os.path.join(folder, "env.json")) as extra:
        env.update(json.load(extra))
    with open(os.path.join(folder, "stderr.txt"), "w") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-m", "edgeslim.measure.worker", "request.json"],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # its own process group: killed whole, runtime threads too
        )

    def lifeline():
        # the raw descriptor, not sys.stdin: a daemon thread blocked inside the buffered reader
        # holds its lock, and the interpreter's exit would wait a second for it
        while os.read(0, 4096):  # b"": the host closed the connection
            pass
        kill(worker)

    threading.Thread(target=lifeline, daemon=True).start()
    try:
        code = worker.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timeout": True}
    finally:
        kill(worker)  # whatever ended the wait (a hang-up too): no worker outlives us
    with open(os.path.join(folder, "stderr.txt"), errors="replace") as err:
        stderr = err.read()[-4000:]
    result_path = os.path.join(folder, "result.json")
    result = None
    if os.path.exists(result_path):
        with open(result_path) as written:
            result = written.read()
    return {"returncode": code, "stderr": stderr, "result": result}


def kill(worker):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(worker.pid, signal.SIGKILL)


def hang_up(signum, frame):
    sys.exit(128 + signum)  # unwinds through the finally clauses: worker killed, folder removed


def main():
    signal.signal(signal.SIGHUP, hang_up)
    signal.signal(signal.SIGTERM, hang_up)
    workdir, timeout = sys.argv[1] or tempfile.gettempdir(), float(sys.argv[2])
    os.makedirs(workdir, exist_ok=True)
    lock = open(os.path.join(workdir, LOCK_FILE), "a")  # noqa: SIM115  (held until exit)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say("busy")
        return
    say("locked", pid=os.getpid())
    folder = None
    try:
        folder = tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=workdir)
        size = int(sys.stdin.buffer.readline())
        unpack(read_exactly(sys.stdin.buffer, size), folder)
        say("done", folder=folder, **measure(folder, timeout))
    except Exception as exc:  # a full disk, a broken payload: the host records the reason
        say("error", folder=folder, error=f"{type(exc).__name__}: {exc}")
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
