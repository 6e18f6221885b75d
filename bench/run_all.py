"""Every side-by-side benchmark in one run, written to one Markdown file.

    python bench/run_all.py          # full run (its wall time heads RESULTS.md) -> bench/RESULTS.md
    python bench/run_all.py --quick  # reduced (9 min in CI before transformers) -> RESULTS-quick.md

Sections: the headline (edgeslim's recommendation under a storage and latency budget),
quantization against NNCF / PyTorch / ONNX Runtime defaults, static INT8 with cross-layer
equalisation and bias correction, structured pruning against
Torch-Pruning, the compression ratio against Deep Compression, the runtimes, transformers against
Torch-Pruning's ViT example, object detection (centernet on the built-in scenes) against
NNCF, ONNX Runtime's quantizer and Torch-Pruning, and the physical limit of this core. A
section that fails is reported in the file with its error, and the others still run; the
script then exits non-zero.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import compression_ratio
import detection
import headline
import peers_pruning
import peers_quantization
import physical_limit
import ptq
import runtimes
import transformers
from common import Bench, Section
from edgeslim.compress.quantize import cpu_has_vnni
from edgeslim.measure.worker import cpu_model
from edgeslim.results import write_atomic

HERE = Path(__file__).parent
PACKAGES = [
    "edgeslim",
    "torch",
    "onnx",
    "onnxruntime",
    "openvino",
    "nncf",
    "ai-edge-litert",
    "litert-torch",
    "ai-edge-quantizer",
    "tflite-micro",
    "torch-pruning",
    "optuna",
    "numpy",
]


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git_revision() -> str:
    done = subprocess.run(
        ["git", "-C", str(HERE), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or "unknown"


def machine(bench: Bench) -> str:
    lines = [
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores, AVX-512 VNNI: "
        f"{'yes' if cpu_has_vnni() else 'no'}",
        f"- OS: {platform.platform()}; Python {platform.python_version()}",
        f"- Data: {bench.label} ({len(bench.data.train)} train / {len(bench.data.test)} test)",
        f"- Code: git {git_revision()}",
        "",
        "| package | version |",
        "|---|---|",
        *(f"| {p} | {version(p)} |" for p in PACKAGES),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced data, epochs and runs")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    started = time.perf_counter()
    bench = Bench.create(args.quick)
    speeds = []

    def limit(b: Bench) -> Section:
        return physical_limit.run(b, speeds)

    sections: list[tuple[str, Callable[[Bench], Section]]] = [
        ("Headline", headline.run),
        ("Quantization", peers_quantization.run),
        ("Post-training quantization: CLE and bias correction", ptq.run),
        ("Structured pruning", peers_pruning.run),
        ("Compression ratio", compression_ratio.run),
        ("Runtimes", runtimes.run),
        ("Transformers", transformers.run),
        ("Object detection", detection.run),
        ("Physical limit", limit),
    ]
    body, timings, failed = [], [], []
    for title, run in sections:
        print(f"\n=== {title} ===", flush=True)
        start = time.perf_counter()
        try:
            section = run(bench)
        except Exception:  # one broken section must not cost the others' results
            failed.append(title)
            body += [f"## {title}", "", "**Failed:**", "", "```", traceback.format_exc(), "```"]
            print(traceback.format_exc(), file=sys.stderr)
        else:
            speeds.extend(section.speeds)
            body += [f"## {title}", ""]
            for table in section.tables:
                body += [table.markdown(), ""]
                print("\n" + table.markdown(), flush=True)
        timings.append((title, time.perf_counter() - start))
    total = time.perf_counter() - started
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes")
    header = [
        "# edgeslim benchmarks: side by side with the peers",
        "",
        f"Written by `python bench/run_all.py{' --quick' if args.quick else ''}` on {now}; "
        f"every figure below comes from this one run ({total / 60:.1f} min wall).",
        "",
        "## Machine and versions",
        "",
        machine(bench),
        "",
    ]
    footer = [
        "## Time per section",
        "",
        "| section | seconds |",
        "|---|---:|",
        *(f"| {t} | {s:.0f} |" for t, s in timings),
        f"| total | {total:.0f} |",
        "",
    ]
    write_atomic(out, "\n".join(header + body + footer))
    print(f"\nwrote {out} in {total / 60:.1f} min", flush=True)
    if failed:
        sys.exit(f"failed sections: {', '.join(failed)}")


if __name__ == "__main__":
    main()
