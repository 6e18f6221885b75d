"""Wall time of ``edgeslim demo`` from a cold start, and where the time goes.

Runs the demo exactly as a user would (a fresh process, an empty runs folder, so the baseline
is trained), then reads the stage timings the run writes (``timings.json``) and each
candidate's build and measure seconds from ``results.jsonl``. The issue's target: under 3
minutes on this machine's 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgeslim.results import RunFolder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="run folder root to keep")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="edgeslim-demo-bench-"))
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "edgeslim.cli", "demo", "--runs", str(root)],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"demo failed ({done.returncode}): {done.stderr[-2000:]}")
    folder = RunFolder(root, "demo")
    stages = json.loads((folder.path / "timings.json").read_text())
    records = folder.latest()
    print(f"# edgeslim demo: {wall:.1f} s wall, {len(records)} candidates (target < 180 s)\n")
    print("| stage | seconds | share |")
    print("|---|---:|---:|")
    for stage, seconds in stages.items():
        print(f"| {stage} | {seconds:.1f} | {seconds / wall:.0%} |")
    other = wall - sum(stages.values())
    print(f"| start-up, selection, printing | {other:.1f} | {other / wall:.0%} |")
    print(f"| **total** | **{wall:.1f}** | |\n")
    print("| candidate | status | build s | measure s |")
    print("|---|---|---:|---:|")
    for name, record in records.items():
        seconds = record.get("seconds", {})
        print(
            f"| {name} | {record['status']} | {seconds.get('build', 0):.1f} | "
            f"{seconds.get('measure', 0):.1f} |"
        )
    last = [line for line in done.stdout.splitlines() if line.strip()]
    print("\n" + "\n".join(last[-6:]))


if __name__ == "__main__":
    main()
