"""Every side-by-side benchmark in one run, written to one Markdown file.

    python bench/run_all.py          # full run (its wall time heads RESULTS.md) -> bench/RESULTS.md
    python bench/run_all.py --quick  # reduced (20 min on 2 AMD EPYC cores) -> RESULTS-quick.md
    python bench/run_all.py --only headline,distillation  # rerun these, replace them in the file

``--only`` keeps every other section of the existing file as it was and says in its header which
sections were rerun, when and at which git revision, so no figure's origin is lost.

Sections: the headline (edgeslim's recommendation under a storage and latency budget),
quantization against NNCF / PyTorch / ONNX Runtime defaults, static INT8 with cross-layer
equalisation and bias correction, structured pruning against Torch-Pruning, the compression ratio
against Deep Compression, the runtimes, latency-targeted pruning against Torch-Pruning's defaults
and MACs-ratio pruning at the same measured speed-up, transformers against
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
import distillation
import headline
import latency_aware
import peers_pruning
import peers_quantization
import physical_limit
import ptq
import runtimes
import transformers
from common import Bench, Section
from edgeslim.compress.quantize import cpu_has_vnni
from edgeslim.files import write_atomic
from edgeslim.measure.worker import cpu_model

HERE = Path(__file__).parent
RERUN_MARK = "Sections rerun since:"
FULL_TOTAL = "total of the full run"
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


def cpu() -> str:
    """The CPU the figures came from: a section rerun on another machine says its own."""
    vnni = "yes" if cpu_has_vnni() else "no"
    return f"{cpu_model()}, {os.cpu_count()} cores, AVX-512 VNNI: {vnni}"


def machine(bench: Bench) -> str:
    lines = [
        f"- CPU: {cpu()}",
        f"- OS: {platform.platform()}; Python {platform.python_version()}",
        f"- Data: {bench.label} ({len(bench.data.train)} train / {len(bench.data.test)} test)",
        f"- Code: git {git_revision()}",
        "",
        "| package | version |",
        "|---|---|",
        *(f"| {p} | {version(p)} |" for p in PACKAGES),
    ]
    return "\n".join(lines)


def sections_of(speeds: list) -> dict[str, tuple[str, Callable[[Bench], Section]]]:
    """Every section by its ``--only`` key: (its title in the file, its run)."""

    def limit(b: Bench) -> Section:
        return physical_limit.run(b, speeds or None)  # alone (--only limit): measures its own

    return {
        "headline": ("Headline", headline.run),
        "quantization": ("Quantization", peers_quantization.run),
        "ptq": ("Post-training quantization: CLE and bias correction", ptq.run),
        "pruning": ("Structured pruning", peers_pruning.run),
        "compression": ("Compression ratio", compression_ratio.run),
        "distillation": ("Distillation", distillation.run),
        "runtimes": ("Runtimes", runtimes.run),
        "transformers": ("Transformers", transformers.run),
        "detection": ("Object detection", detection.run),
        "latency": ("Latency-aware design", latency_aware.run_default),
        "limit": ("Physical limit", limit),
    }


def blocks_of(text: str) -> list[tuple[str, list[str]]]:
    """A Markdown file cut at its ``## `` headings: (heading, lines), the preamble first as ""."""
    blocks: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines():
        if line.startswith("## "):
            blocks.append((line[3:], []))
        blocks[-1][1].append(line)
    return blocks


def stale(line: str, rerun: set[str]) -> bool:
    """Whether ``line`` notes a rerun of sections that are all being rerun again."""
    if not line.startswith("- ") or " on " not in line:
        return False
    return set(line[2:].split(" on ", 1)[0].split(", ")) <= rerun


def note_rerun(preamble: list[str], note: str, rerun: set[str]) -> None:
    """Add ``note`` to the header's list of reruns (started on the first), dropping earlier
    notes about sections that are all rerun now."""
    if not any(line.startswith(RERUN_MARK) for line in preamble):
        at = next(i for i, line in enumerate(preamble) if line.startswith("Written by"))
        preamble[at] = preamble[at].replace(
            "every figure below comes from this one run",
            "every figure below comes from this one run, except the sections listed as rerun",
        )
        preamble[at + 1 : at + 1] = ["", RERUN_MARK]
    preamble[:] = [line for line in preamble if not stale(line, rerun)]
    at = max(i for i, line in enumerate(preamble) if line.startswith((RERUN_MARK, "- ")))
    preamble.insert(at + 1, f"- {note}")


def retime(lines: list[str], timings: dict[str, float]) -> None:
    """The time table with each rerun section's row replaced (or added before the total)."""
    rows = {line.split("|")[1].strip(): i for i, line in enumerate(lines) if line.count("|") == 3}
    total = rows.get("total", rows.get(FULL_TOTAL))
    if total is not None:
        lines[total] = f"| {FULL_TOTAL} |" + lines[total].split("|")[2] + "|"
    for title, seconds in timings.items():
        row = f"| {title} (rerun) | {seconds:.0f} |"
        at = rows.get(title, rows.get(f"{title} (rerun)"))
        if at is not None:
            lines[at] = row
        else:
            lines.insert(len(lines) if total is None else total, row)
            total = None if total is None else total + 1


def splice(existing: str, fresh: dict[str, list[str]], timings: dict[str, float], note: str) -> str:
    """``existing`` with the sections in ``fresh`` replaced (new ones go before the timings),
    their time rows replaced and ``note`` under the header."""
    blocks = blocks_of(existing)
    titles = [title for title, _ in blocks]
    for title, lines in fresh.items():
        if title in titles:
            blocks[titles.index(title)] = (title, lines)
        else:
            at = titles.index("Time per section") if "Time per section" in titles else len(blocks)
            blocks.insert(at, (title, lines))
            titles.insert(at, title)
    note_rerun(blocks[0][1], note, set(fresh))
    if "Time per section" in titles:
        retime(blocks[titles.index("Time per section")][1], timings)
    return "\n".join(line for _, lines in blocks for line in lines) + "\n"


def run_sections(
    bench: Bench, chosen: list[tuple[str, Callable[[Bench], Section]]], speeds: list
) -> tuple[dict[str, list[str]], dict[str, float], list[str]]:
    """Each section's Markdown lines and seconds; a failing one is reported in its place."""
    body, timings, failed = {}, {}, []
    for title, run in chosen:
        print(f"\n=== {title} ===", flush=True)
        start = time.perf_counter()
        try:
            section = run(bench)
        except Exception:  # one broken section must not cost the others' results
            failed.append(title)
            body[title] = [f"## {title}", "", "**Failed:**", "", "```", traceback.format_exc(),
                           "```", ""]  # fmt: skip
            print(traceback.format_exc(), file=sys.stderr)
        else:
            speeds.extend(section.speeds)
            body[title] = [f"## {title}", ""]
            for table in section.tables:
                body[title] += [table.markdown(), ""]
                print("\n" + table.markdown(), flush=True)
        timings[title] = time.perf_counter() - start
    return body, timings, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced data, epochs and runs")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--only", default=None, help="comma-separated sections to rerun into the existing file"
    )
    args = parser.parse_args()
    out = args.out or HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    speeds: list = []
    started = time.perf_counter()
    bench = Bench.create(args.quick)
    known = sections_of(speeds)
    keys = list(known) if args.only is None else [k.strip() for k in args.only.split(",")]
    unknown = [k for k in keys if k not in known]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(known)}")
    if args.only is not None and not out.exists():
        parser.error(f"--only replaces sections of an existing file; {out} does not exist")
    body, timings, failed = run_sections(bench, [known[k] for k in keys], speeds)
    total = time.perf_counter() - started
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes")
    if args.only is not None:
        note = (
            f"{', '.join(body)} on {now} (`python bench/run_all.py"
            f"{' --quick' if args.quick else ''} --only {args.only}`, "
            f"git {git_revision()}, {total / 60:.1f} min, on {cpu()})"
        )
        write_atomic(out, splice(out.read_text(), body, timings, note))
    else:
        write_atomic(out, full_file(bench, args.quick, now, total, body, timings))
    print(f"\nwrote {out} in {total / 60:.1f} min", flush=True)
    if failed:
        sys.exit(f"failed sections: {', '.join(failed)}")


def full_file(
    bench: Bench,
    quick: bool,
    now: str,
    total: float,
    body: dict[str, list[str]],
    timings: dict[str, float],
) -> str:
    header = [
        "# edgeslim benchmarks: side by side with the peers",
        "",
        f"Written by `python bench/run_all.py{' --quick' if quick else ''}` on {now}; "
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
        *(f"| {t} | {s:.0f} |" for t, s in timings.items()),
        f"| total | {total:.0f} |",
        "",
    ]
    return "\n".join(header + [line for lines in body.values() for line in lines] + footer)


if __name__ == "__main__":
    main()
