"""Command line: ``edgeslim demo | run | report | measure | zoo | sensitivity | devices``.

User errors print one line and exit 2. ``run``, ``demo`` and ``search`` say by their exit code
whether there is a recommendation (``EXIT_CODES``), so a script or a CI job can tell.

Each command imports what it runs inside its own function: ``edgeslim --help`` and a mistyped
command answer in half a second instead of the two that torch, ONNX and Optuna take to import.
This is the face of the package (the top layer): no import here dodges a cycle."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from edgeslim.errors import ConfigError, EdgeslimError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Find the best compressed model for an edge device.",
)
console = Console()
err_console = Console(stderr=True)
MESSAGE_CHARS = 2000  # a message longer than this is cut: one line stays one readable line

# Exit codes of run, demo and search. No recommendation (3) wins over failed candidates (4): a
# script asks first whether there is a model to ship, so 0 and 4 both mean "there is one", 4
# that it was chosen among fewer candidates than asked for (the failed ones are listed).
RECOMMENDED = 0
USER_ERROR = 2
NOTHING_FITS = 3
SOME_FAILED = 4
INTERRUPTED = 130
EXIT_CODES = "\n".join(
    [
        "Exit codes:",
        f"{RECOMMENDED:<5}a recommendation, and every candidate was measured",
        f"{USER_ERROR:<5}a user error (a bad file or option), said in one error line",
        f"{NOTHING_FITS:<5}no recommendation: nothing fits the budget (or nothing was measured),"
        " whether or not candidates failed",
        f"{SOME_FAILED:<5}a recommendation, but some candidates failed (listed on stderr)",
        f"{INTERRUPTED:<5}interrupted (Ctrl-C): what finished is kept; run the same command again",
    ]
)


def one_line(text: object) -> str:
    """A message on one line, cut at MESSAGE_CHARS."""
    joined = " ".join(part.strip() for part in str(text).splitlines() if part.strip())
    if len(joined) > MESSAGE_CHARS:
        joined = joined[: MESSAGE_CHARS - 3] + "..."
    return joined


def say(label: str, style: str, text: object) -> None:
    """``error: ...`` or ``warning: ...`` on stderr: the label in colour, the text as it is (user
    text such as a YAML key ``[/oops]`` is never read as rich markup)."""
    err_console.print(
        Text.assemble((f"{label}:", style), " ", one_line(text)), highlight=False, soft_wrap=True
    )


DataOption = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        help="digits | fashion-mnist:DIR | npz:FILE | imagefolder:DIR | scenes | coco:FILE"
        " | yolo:DIR",
    ),
]


def metrics_table(record: dict, title: str) -> Table:
    from edgeslim.measure import METRICS
    from edgeslim.report.columns import format_value

    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("better")
    for name, metric in METRICS.items():
        if metric.better and name in record:
            label = metric.unit + (" (estimate)" if name == "energy_mj" else "")
            table.add_row(name, format_value(record[name], metric.unit), label, metric.better)
    return table


def print_record(record: dict, title: str, json_path: Path | None) -> None:
    console.print(metrics_table(record, title))
    how = record["measured_with"]
    console.print(
        f"measured with {how['runtime']} {how['runtime_version']}, "
        f"{how['settings']['threads']} thread(s) on cores {how['cores']}, "
        f"{how['latency_runs']} latency runs, {how['test_samples']} test samples"
        + (f", {how['val_samples']} validation samples" if how.get("val_samples") else "")
        + "; "
        f"cpu: {how['cpu']}"
        + (
            f"; on board {how['device']['board']} ({how['host']})" if how["device"]["board"] else ""
        ),
        markup=False,
    )
    for family, error in record.get("errors", {}).items():
        say("warning", "yellow", f"{family} not measured: {error}")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(record, indent=2, default=str))
        console.print(f"record written to {json_path}", markup=False)


@app.command()
def measure(
    model: Annotated[
        str,
        typer.Argument(
            help="ONNX file, TorchScript/.pt2 file, zoo name, or package.module:function"
        ),
    ],
    data: DataOption = "digits",
    runtime: Annotated[
        str, typer.Option(help="onnxruntime | openvino | litert | tflite-micro")
    ] = "onnxruntime",
    threads: Annotated[int, typer.Option(help="the runtime's intra-op threads")] = 1,
    runs: Annotated[int, typer.Option(help="latency samples at batch 1")] = 1000,
    weights: Annotated[Path | None, typer.Option(help="state dict (.pt) for the model")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the record here")] = None,
    board: Annotated[
        str | None, typer.Option(help="measure on this board of the devices file, over SSH")
    ] = None,
) -> None:
    """Measure one model on every metric, on one runtime, in an isolated process (here, or on a
    board over SSH)."""
    from edgeslim.data import load
    from edgeslim.measure import MeasureSettings
    from edgeslim.measure import measure as measure_model

    dataset = load(data)
    target: object = Path(model)
    if not model.lower().endswith(".onnx"):
        from edgeslim.models import load_model

        target = load_model(model, dataset.spec, weights)
    settings = MeasureSettings(runtime=runtime, threads=threads, runs=runs, min_runs=min(100, runs))
    record = measure_model(target, dataset, settings, board=board)
    print_record(record, f"{model} on {dataset.spec.name}", json_path)


@app.command()
def profile(
    model: Annotated[
        str, typer.Argument(help="zoo name, TorchScript/.pt2 file, or package.module:function")
    ],
    data: DataOption = "digits",
    runtime: Annotated[
        str, typer.Option(help="onnxruntime | openvino | litert | tflite-micro | executorch")
    ] = "onnxruntime",
    threads: Annotated[int, typer.Option(help="the runtime's intra-op threads")] = 1,
    weights: Annotated[Path | None, typer.Option(help="state dict (.pt) for the model")] = None,
    board: Annotated[
        str | None, typer.Option(help="time on this board of the devices file, over SSH")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="write the table here too")
    ] = None,
) -> None:
    """Where the time goes on a runtime, layer by layer: the model's latency table (pruned
    variants timed on the runtime, and a predictor fitted to them), built or read from the
    cache (per runtime version, device, threads and model)."""
    from edgeslim.compress.structured import StructuredSettings, latency_table
    from edgeslim.data import load
    from edgeslim.measure import LatencyProbe, MeasureSettings
    from edgeslim.models import load_model

    dataset = load(data)
    net = load_model(model, dataset.spec, weights)
    if isinstance(net, Path):
        raise ConfigError(
            f"{model}: profile prunes PyTorch layers to time them; give the PyTorch model, "
            "not its ONNX export"
        )
    probe = LatencyProbe(dataset, MeasureSettings(runtime=runtime, threads=threads), board)
    table, path, plain, _ = latency_table(net, dataset, StructuredSettings(ratio=0.5), probe)
    summary = table.summary()
    baseline = table.samples[0]["work"]
    costs = table.predictor.breakdown(baseline)
    predicted = table.predictor.predict(baseline)
    out = Table(
        title=f"{model} on {probe.runtime} ({summary['key']}): {table.baseline_ms:.4f} ms p50 "
        f"measured, {predicted:.4f} ms predicted",
        title_justify="left",
    )
    for column in ("layer", "MACs", "outputs", "predicted ms", "share"):
        out.add_column(column, justify="left" if column == "layer" else "right")
    out.add_row(
        "(fixed: per call, layers kept whole)",
        "",
        "",
        f"{table.predictor.fixed_ms:.4f}",
        f"{table.predictor.fixed_ms / predicted:.0%}",
    )
    varied = {n for sample in table.samples for n, w in sample["work"].items() if w != baseline[n]}
    for name, ms in sorted(costs.items(), key=lambda item: -item[1]):
        macs, elements = baseline[name]
        # a layer whose widths never vary cannot be told from the fixed part: counted there
        cost = (f"{ms:.4f}", f"{ms / predicted:.0%}") if name in varied else ("in fixed", "")
        out.add_row(escape(name), f"{int(macs):,}", f"{int(elements):,}", *cost)
    console.print(out)
    console.print(
        f"predictor: {summary['held_out_within_10pct']:.0%} of {summary['variants']} variants "
        f"within 10% held out (median error {summary['held_out_median_error']:.1%}); widths "
        f"in multiples of {plain.round_to}; table {path}",
        markup=False,
    )
    if json_path is not None:
        json_path.write_text(json.dumps({**table.to_dict(), "summary": summary}, indent=1))


@app.command()
def zoo(data: DataOption = "digits") -> None:
    """List the zoo's models for the data's task (``--data scenes``: the detectors) with
    parameters and MACs."""
    from edgeslim.data import load
    from edgeslim.export import export_for_timing
    from edgeslim.graph import summarize
    from edgeslim.models import ZOO, build, models_for

    dataset = load(data)
    table = Table(
        title=f"model zoo for {dataset.spec.task} on {dataset.spec.name} "
        f"{dataset.spec.input_shape}",
        title_justify="left",
    )
    for column in ("model", "params", "MACs", "about"):
        table.add_column(column, justify="right" if column in ("params", "MACs") else "left")
    with tempfile.TemporaryDirectory() as tmp:
        for name in models_for(dataset.spec.task):
            builder = ZOO[name]
            path = Path(tmp) / f"{name}.onnx"
            # the quick exporter: counts only, and a second or two for the zoo instead of 40
            export_for_timing(build(name, dataset.spec), dataset, path)
            summary = summarize(path)
            about = (builder.__doc__ or sys.modules[builder.__module__].__doc__ or "").strip()
            table.add_row(
                escape(name),
                f"{summary.params:,}",
                f"{sum(layer.macs for layer in summary.layers):,}",
                escape(about.splitlines()[0]),
            )
    console.print(table)


@app.command()
def sensitivity(
    model: Annotated[
        str, typer.Argument(help="zoo name, TorchScript/.pt2 file, or package.module:function")
    ],
    data: DataOption = "digits",
    kind: Annotated[str, typer.Option(help="unstructured | structured")] = "unstructured",
    ratios: Annotated[
        str, typer.Option(help="comma-separated pruning ratios")
    ] = "0.25,0.5,0.75,0.9",
    weights: Annotated[Path | None, typer.Option(help="state dict (.pt) for the model")] = None,
    epochs: Annotated[
        int, typer.Option(help="train this long first when no weights are given for a zoo model")
    ] = 10,
    tolerance: Annotated[float, typer.Option(help="accuracy drop counted as tolerated")] = 0.01,
) -> None:
    """Prune one layer at a time at several ratios: which layers tolerate pruning?"""
    from edgeslim.compress import sensitivity_sweep
    from edgeslim.data import load
    from edgeslim.models import ZOO, load_model
    from edgeslim.train import fit

    try:
        ratio_list = tuple(float(r) for r in ratios.split(","))
    except ValueError as exc:
        raise ConfigError(f"--ratios must be numbers separated by commas, got {ratios!r}") from exc
    sweep = sensitivity_sweep(kind, ratio_list)
    dataset = load(data)
    net = load_model(model, dataset.spec, weights)
    if isinstance(net, Path):
        raise ConfigError(
            f"{model}: sensitivity prunes PyTorch layers; give the PyTorch model, "
            "not its ONNX export"
        )
    if model in ZOO and weights is None:
        console.print(f"no weights given: training {model} for {epochs} epochs first", markup=False)
        fit(net, dataset, epochs=epochs)
    table = sweep(net, dataset, ratios=ratio_list)
    out = Table(
        title=f"{kind} sensitivity of {model} on {dataset.spec.name} "
        f"(validation accuracy, baseline {table.baseline_accuracy:.4f})",
        title_justify="left",
    )
    out.add_column("layer")
    out.add_column("weights", justify="right")
    for ratio in table.ratios:
        out.add_column(f"pruned {ratio:g}", justify="right")
    out.add_column(f"tolerates (drop <= {tolerance:g})", justify="right")
    for layer, by_ratio in table.accuracy.items():
        cells = []
        for ratio in table.ratios:
            drop = table.drop(layer, ratio)
            style = "green" if drop <= tolerance else "yellow" if drop <= 5 * tolerance else "red"
            cells.append(f"[{style}]{by_ratio[ratio]:.4f}[/{style}]")
        tolerated = [r for r in table.ratios if table.drop(layer, r) <= tolerance]
        out.add_row(
            escape(layer),
            f"{table.params[layer]:,}",
            *cells,
            f"{max(tolerated):g}" if tolerated else "none",
        )
    console.print(out)


def plain(text: str) -> None:
    """Progress lines: names like [trial 3/12] are text, not rich markup."""
    console.print(text, highlight=False, markup=False)


def print_outcome(outcome) -> int:
    """The recommendation, the failed candidates and the reports; returns the exit code."""
    selection = outcome.selection
    style = "green" if selection.recommended else "yellow"
    console.print(Text(selection.summary(), style=style), highlight=False)
    if outcome.failed:
        say("failed candidates", "yellow", ", ".join(outcome.failed))
    for kind, path in outcome.reports.items():
        console.print(f"{kind} report: {path}", markup=False)
    return exit_code(outcome)


def exit_interrupted() -> None:
    """Exit with 130, always. ``sys.exit(130)`` is not enough under ``python -m``: when the
    interrupt passed through C code that runs Python with ``PyRun_String`` (pybind11's ``exec``
    does), CPython 3.11 remembers an "unhandled" KeyboardInterrupt and, after finalizing, kills
    itself with SIGINT instead of returning the code. Everything worth keeping is written and
    closed by now (the run's records and the study are written as they finish)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(INTERRUPTED)


def exit_code(outcome) -> int:
    """``NOTHING_FITS`` without a recommendation, else ``SOME_FAILED`` if a candidate failed."""
    if outcome.selection.recommended is None:
        return NOTHING_FITS
    return SOME_FAILED if outcome.failed else RECOMMENDED


def run_experiment(experiment, runs: Path, retry_failed: bool) -> None:
    from edgeslim.experiment import run as run_it

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outcome = run_it(
                experiment,
                runs,
                say=plain,
                retry_failed=retry_failed,
            )
        except KeyboardInterrupt:
            err_console.print(
                "interrupted: every finished candidate is kept in "
                f"{runs / experiment.config.name / 'results.jsonl'}; run the same command "
                "again to resume",
                markup=False,
            )
            exit_interrupted()
    for warning in caught:
        if "damaged record" in str(warning.message):
            say("warning", "yellow", warning.message)
    sys.exit(print_outcome(outcome))


RunsOption = Annotated[Path, typer.Option(help="folder that holds the run folders")]
RetryOption = Annotated[bool, typer.Option(help="redo candidates whose earlier attempt failed")]


@app.command(epilog=EXIT_CODES)
def run(
    experiment_file: Annotated[Path, typer.Argument(help="experiment YAML file")],
    runs: RunsOption = Path("runs"),
    retry_failed: RetryOption = False,
) -> None:
    """Build, measure and rank every candidate of an experiment; write runs/NAME/ and its report.

    Running it again resumes: finished candidates are kept, the rest are built."""
    from edgeslim.config import load as load_experiment

    run_experiment(load_experiment(experiment_file), runs, retry_failed)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="run folder (runs/NAME)")]) -> None:
    """Rebuild report.html and report.md of a run folder from its results.jsonl."""
    from edgeslim.report import report as write_report

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        selection, paths = write_report(run_dir)
    for message in dict.fromkeys(
        str(w.message) for w in caught if "damaged record" in str(w.message)
    ):
        say("warning", "yellow", message)
    console.print(selection.summary(), highlight=False, markup=False)
    for kind, path in paths.items():
        console.print(f"{kind} report: {path}", markup=False)


@app.command(epilog=EXIT_CODES)
def search(
    experiment_file: Annotated[Path, typer.Argument(help="experiment YAML file with search:")],
    trials: Annotated[
        int | None, typer.Option(help="trials to add to the study (default: the file's)")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="Optuna storage URL (default: sqlite file in the run folder)"),
    ] = None,
    workers: Annotated[int, typer.Option(help="local worker processes")] = 1,
    runs: RunsOption = Path("runs"),
) -> None:
    """Search compression settings (NSGA-II by default) for the best models under the budget.

    Running it again adds trials to the same study."""
    from edgeslim.config import load as load_experiment
    from edgeslim.search import run_search

    experiment = load_experiment(experiment_file)
    try:
        outcome = run_search(
            experiment,
            str(runs),
            trials=trials,
            storage=storage,
            workers=workers,
            say=plain,
        )
    except KeyboardInterrupt:
        err_console.print("interrupted: finished trials are kept in the study; run again to go on")
        exit_interrupted()
    sys.exit(print_outcome(outcome))


@app.command()
def worker(
    storage: Annotated[str, typer.Option(help="the study's Optuna storage URL")],
    study: Annotated[str, typer.Option(help="study name (the experiment's name)")],
    runs: RunsOption = Path("runs"),
) -> None:
    """Join a study from this machine: run trials until the study has the trials asked for."""
    import signal as signals

    from edgeslim.search import join_study

    # a terminated worker leaves its trial to the heartbeat, like a killed one
    signals.signal(signals.SIGTERM, lambda *_: sys.exit(143))
    done = join_study(storage, study, str(runs), say=plain)
    console.print(f"worker done: {done} trial(s)")


devices_app = typer.Typer(
    no_args_is_help=False,
    help="Device profiles and your boards over SSH: list, check, calibrate.",
)
app.add_typer(devices_app, name="devices")
BoardArgument = Annotated[str, typer.Argument(help="a board of the devices file")]


@devices_app.callback(invoke_without_command=True)
def devices(ctx: typer.Context) -> None:
    """List the built-in device profiles and the boards of your devices file."""
    if ctx.invoked_subcommand is not None:
        return
    from edgeslim.boards import boards, calibration, devices_file
    from edgeslim.devices import DEVICES

    # one section per profile, a fact a line: at any width the metric and setting names one
    # types into an experiment (tensor_arena_kb, memory_limit_mb) are printed whole
    table = Table(title="device profiles", title_justify="left", show_header=False)
    table.add_column("fact", no_wrap=True, style="bold")
    table.add_column("value", overflow="fold")
    for p in DEVICES.values():
        rows = {
            p.name: p.description,
            "budget (on the device)": "\n".join(f"{k} {v}" for k, v in p.budget.items()),
            "emulation here": "\n".join(
                [*(f"{k}: {v}" for k, v in p.measure.items()), f"slowdown: {p.slowdown:g}"]
            ),
            "runtimes": ", ".join(p.runtimes),
            "source": p.source,
        }
        for key, value in rows.items():
            table.add_row(escape(key), escape(value))
        table.add_section()
    console.print(table, highlight=False)
    mine = boards()
    if not mine:
        console.print(
            f"no boards: describe yours in {devices_file()} (docs: tutorials/boards.md)",
            markup=False,
        )
        return
    table = Table(title=escape(f"boards ({devices_file()})"), title_justify="left")
    for column in ("name", "ssh", "python", "runtimes", "profile", "calibrated slowdown"):
        table.add_column(column, overflow="fold")  # names wrap, never end in "..."
    for board in mine.values():
        measured = calibration(board.name)
        table.add_row(
            escape(board.name),
            escape("\n".join(board.ssh)),
            escape(board.python),
            escape(", ".join(board.runtimes)),
            escape(board.profile or ""),
            f"{measured['slowdown']:g} ({measured['calibrated_at'][:10]})" if measured else "",
        )
    console.print(table, highlight=False)


@devices_app.command("check")
def devices_check(name: BoardArgument) -> None:
    """Reach each board of NAME over SSH: Python, numpy and runtime versions, cores, memory."""
    from edgeslim.boards import board_named
    from edgeslim.boards.probe import check

    board = board_named(name)
    missing = False
    for target in board.config.ssh:
        facts = check(board, target)
        table = Table(title=escape(f"{name}: {target}"), title_justify="left", show_header=False)
        table.add_column("fact")
        table.add_column("value")
        rows = {
            "host": facts["host"],
            "system": facts["uname"],
            "cpu": f"{facts['cpu']}, {facts['cores']} cores",
            "clock": f"{facts['clock_max_mhz']} MHz (max)",
            "memory": f"{facts['memory_available_mb']} MB free of {facts['memory_total_mb']} MB",
            "python": f"{facts['python']} ({facts['python_path']})",
            **{
                k: escape(v) if v else "[red]not installed[/red]"
                for k, v in facts["packages"].items()
            },
            "work folder": f"{facts['workdir']}, {facts['disk_free_mb']} MB free"
            + (
                f", {facts['leftover_folders']} leftover run folder(s)"
                if facts["leftover_folders"]
                else ""
            ),
        }
        for key, value in rows.items():
            table.add_row(escape(key), value if key in facts["packages"] else escape(str(value)))
        console.print(table, highlight=False)
        missing = missing or bool(facts["missing"])
    if missing:
        say("error", "red", "a package the board's runtimes need is missing")
        sys.exit(1)


@devices_app.command("calibrate")
def devices_calibrate(
    name: BoardArgument,
    models: Annotated[str, typer.Option(help="reference zoo models, comma-separated")] = ",".join(
        ("small-cnn", "lenet5", "mobilenet-v1", "resnet8")
    ),
    runs: Annotated[int, typer.Option(help="latency samples per model and machine")] = 300,
) -> None:
    """Measure reference models here and on NAME; store the slowdown its host budgets use.

    The measured slowdown replaces the profile's assumed one when NAME's budget is applied to
    figures measured on this host (measure: {where: host})."""
    from edgeslim.boards import board_named
    from edgeslim.measure.calibrate import calibrate

    chosen = tuple(m.strip() for m in models.split(",") if m.strip())
    entry = calibrate(board_named(name), chosen, runs=runs, say=plain)
    console.print(
        f"{name}: {entry['slowdown']:g}x slower than this host (median of {len(chosen)} "
        f"models, p50 latency on {entry['runtime']}); stored in {entry['file']}",
        highlight=False,
        markup=False,
    )


@app.command(epilog=EXIT_CODES)
def demo(
    runs: RunsOption = Path("runs"),
    retry_failed: RetryOption = False,
    runtimes: Annotated[
        bool,
        typer.Option(
            "--runtimes",
            help="the runtimes demo: the same candidates on ONNX Runtime, LiteRT and TFLite Micro",
        ),
    ] = False,
    detection: Annotated[
        bool,
        typer.Option(
            "--detection", help="the detection demo: centernet on the built-in synthetic scenes"
        ),
    ] = False,
) -> None:
    """The main job on built-in data: every technique on digits, a budget, the report."""
    from edgeslim.config import parse
    from edgeslim.demo import DEMO, DETECTION_DEMO, RUNTIMES_DEMO

    if runtimes and detection:
        raise ConfigError("--runtimes or --detection, not both")
    chosen = RUNTIMES_DEMO if runtimes else DETECTION_DEMO if detection else DEMO
    run_experiment(parse(chosen), runs, retry_failed)


def main() -> None:
    """Typer handles usage errors, --help and Ctrl-C itself; errors a user caused print one line."""
    try:
        typer.main.get_command(app).main()
    except EdgeslimError as exc:
        say("error", "red", exc)
        sys.exit(USER_ERROR)


if __name__ == "__main__":
    main()
