"""What measuring on a board over SSH costs, against measuring on this host.

A loopback board (a throw-away sshd on 127.0.0.1 and a Python with numpy and onnxruntime only,
as the board tests use) measures the same ONNX files as a local worker, with the same settings:
seconds per candidate for each, the difference (SSH session, copying the worker, the model and
the samples, unpacking, cleaning up), and whether the figures agree.

    python bench/remote_overhead.py [--data digits] [--repeats 3]

Needs OpenSSH's server (``apt-get install openssh-server``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' simulated board

from tests.boards.simulated import SshServer, board_config, device_python

import edgeslim as es
from common import markdown_table
from edgeslim.boards import Board
from edgeslim.measure.settings import MeasureSettings

MODELS = ("small-cnn", "lenet5", "mobilenet-v1", "resnet8")


def timed(fn) -> tuple[float, dict]:
    start = time.perf_counter()
    record = fn()
    return time.perf_counter() - start, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = es.data.load(args.data)
    settings = MeasureSettings(runs=300, min_runs=100, batch_sizes=(1, 32), activation_samples=64)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        python = device_python(folder / "device", ["numpy", "onnxruntime"])
        server = SshServer(folder / "sshd")
        try:
            board = Board(board_config(server, python))
            for name in MODELS:
                model = es.export(
                    es.Candidate(name, model=es.models.build(name, data.spec)), data, folder
                ).artifact
                here, there = [], []
                for _ in range(args.repeats):  # interleaved: drift hits both alike
                    seconds, local = timed(lambda: es.measure(model, data, settings))  # noqa: B023
                    here.append(seconds)
                    seconds, remote = timed(
                        lambda: es.measure(model, data, settings, board=board)  # noqa: B023
                    )
                    there.append(seconds)
                h, t = statistics.median(here), statistics.median(there)
                rows.append(
                    [
                        name,
                        f"{model.stat().st_size / 1024:.1f}",
                        f"{h:.2f}",
                        f"{t:.2f}",
                        f"{t - h:+.2f}",
                        f"{local['latency_p50_ms']:.4f} / {remote['latency_p50_ms']:.4f}",
                        "yes" if local["accuracy"] == remote["accuracy"] else "NO",
                    ]
                )
                print(f"  measured {name}", file=sys.stderr)
        finally:
            server.stop()
    print(
        f"\nseconds per candidate, local worker vs loopback board over SSH, {args.data} "
        f"({len(data.test)} test samples), median of {args.repeats} interleaved repeats\n"
    )
    headers = ["model", "ONNX KB", "local s", "board s", "overhead s", "p50 ms local / board",
               "same accuracy"]  # fmt: skip
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    main()
