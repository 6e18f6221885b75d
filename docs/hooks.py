"""MkDocs hooks: the reference pages are generated from the code on every build.

A committed page holds a marker line, ``<!-- generated: NAME -->``; ``on_page_markdown``
replaces it with what ``GENERATORS[NAME]`` writes from the code: the YAML schema from the pydantic
models of ``edgeslim.config`` (and the recipe steps, presets and device profiles from their
registries), the command line from the Typer app, the public API as mkdocstrings blocks, and the
metric table from ``edgeslim.measure.METRICS``. Nothing here is copied by hand, so the pages
cannot drift from the code; an unknown marker fails the build.

This module imports nothing from MkDocs: ``tests/test_docs.py`` calls the generators directly, so
a change in the code that breaks them fails the test suite, not only ``mkdocs build``.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable
from typing import Any

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)


def cell(text: Any) -> str:
    """Text for one Markdown table cell: pipes escaped, lines joined."""
    return " ".join(str(text).split()).replace("|", "\\|")


# ---------------------------------------------------------------- the YAML schema (pydantic)


def constraint_text(metadata: list[Any]) -> list[str]:
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "at least"}
    found = []
    for item in metadata:
        for attr, word in words.items():
            value = getattr(item, attr, None)
            if value is not None:
                found.append(f"{word} {value}" + (" item(s)" if attr == "min_length" else ""))
    return found


def type_text(annotation: Any, links: dict[type, str]) -> str:
    """A type as a reader writes it in YAML: ``int (>= 1)``, ``a | b``, ``list of str``."""
    from pydantic import BaseModel
    from pydantic.fields import FieldInfo

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is typing.Annotated:
        inner, *extra = args
        limits = [c for e in extra if isinstance(e, FieldInfo) for c in constraint_text(e.metadata)]
        limits += constraint_text([e for e in extra if not isinstance(e, FieldInfo)])
        text = type_text(inner, links)
        return f"{text} ({', '.join(limits)})" if limits else text
    if origin is typing.Literal:
        return " | ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(type_text(a, links) for a in args)
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return "[" + ", ".join(type_text(a, links) for a in args) + "]"
        return f"list of {type_text(args[0], links)}" if args else "list"
    if origin is dict:
        return f"mapping of {type_text(args[0], links)} to {type_text(args[1], links)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        anchor = links.get(annotation)
        return f"[{annotation.__name__}](#{anchor})" if anchor else annotation.__name__
    if annotation is Any:
        return "any"
    if isinstance(annotation, type):
        return {"str": "text", "int": "integer", "float": "number", "bool": "true / false"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation)


def default_text(field: Any) -> str:
    from pydantic_core import PydanticUndefined

    if field.is_required():
        return "required"
    default = field.default
    if default is PydanticUndefined:
        return "(computed)"
    if default is None:
        return "`null`"
    if hasattr(default, "model_dump"):
        return "(its defaults)"
    if isinstance(default, (bool, list, dict, tuple)):
        return f"`{json.dumps(default)}`"
    return f"`{default}`"


def fields_table(model: Any, links: dict[type, str]) -> str:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        limits = constraint_text(field.metadata)
        kind = type_text(field.annotation, links) + (f" ({', '.join(limits)})" if limits else "")
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        about = field.description or ""
        if extra.get("reference") == "model":
            about += " (a model reference: found beside the experiment file first)"
        elif extra.get("reference") == "file":
            about += " (a path, relative to the experiment file)"
        rows.append(
            f"| `{name}` | {cell(kind)} | {cell(default_text(field))} | {cell(about.strip())} |"
        )
    return "\n".join(rows)


def yaml_schema() -> str:
    from edgeslim import config
    from edgeslim.boards import BoardConfig
    from edgeslim.compress.presets import PRESETS
    from edgeslim.compress.registry import TECHNIQUES
    from edgeslim.measure import METRICS

    sections = [
        ("experiment", "The top level", config.ExperimentConfig, ""),
        ("train", "`train:` the baseline's training", config.TrainConfig, ""),
        (
            "candidates",
            "`candidates:` each entry",
            config.CandidateConfig,
            "An entry is a preset's name (a bare word: `- int8-static`) or a mapping with a "
            "`name` and either `preset` or `recipe`. A `grid` expands one entry into one "
            "candidate per combination of values, named after them "
            "(`sparse-sparsity-0.5`).",
        ),
        ("measure", "`measure:` how every candidate is measured", config.MeasureConfig, ""),
        (
            "device",
            "`device:` a board over SSH",
            BoardConfig,
            "`device:` is a built-in profile's name (below), a board's name from the devices "
            "file (`~/.config/edgeslim/devices.yaml`, or the file `$EDGESLIM_DEVICES` names, "
            "where each board is these settings under its name), or these settings inline.",
        ),
        ("search", "`search:` a multi-objective search", config.SearchConfig, ""),
        ("space", "`search.space:` what the search may choose", config.SpaceConfig, ""),
    ]
    links = {model: anchor for anchor, _, model, _ in sections}
    out = []
    for anchor, title, model, intro in sections:
        out.append(f"## {title} {{#{anchor}}}\n")
        if intro:
            out.append(intro + "\n")
        out.append(fields_table(model, links) + "\n")

    out.append("## Recipe steps {#steps}\n")
    out.append(
        "A recipe is a list of steps, each a mapping with one key: "
        "`{prune: {kind: structured, ratio: 0.5}}`. Where a step has kinds, `kind` picks one "
        "and each kind has its own settings. PyTorch steps (`torch`) come before the first "
        "ONNX step (`onnx`): at that step the model is exported and checked.\n"
    )
    for name in sorted(TECHNIQUES):
        tech = TECHNIQUES[name]
        step, _, kind = name.partition(".")
        heading = f"`{step}` `kind: {kind}`" if kind else f"`{step}`"
        out.append(f"### {heading} {{#step-{name.replace('.', '-')}}}\n")
        out.append(f"Stage: {tech.stage}.\n")
        fields = tech.settings.model_fields
        out.append(fields_table(tech.settings, links) + "\n" if fields else "No settings.\n")
        for inner in {
            m for f in fields.values() for m in config.models_in(f.annotation) if m is not None
        }:
            out.append(f"`{inner.__name__}`:\n\n" + fields_table(inner, links) + "\n")

    out.append("## Presets {#presets}\n")
    out.append("A preset is a named recipe; a candidate may name one (`- deep-compression`).\n")
    out.append("| preset | recipe |\n|---|---|")
    for name, recipe in PRESETS.items():
        out.append(f"| `{name}` | `{cell(recipe)}` |")
    out.append("")

    out.append("## Device profiles {#profiles}\n")
    out.append(
        "`device: NAME` takes the profile's budget (bounds in the file's own `budget:` replace "
        "the profile's on the same metric), its runtimes when the file names none, and its "
        "emulation settings for `measure:`. Latency bounds are the device's own; figures "
        "measured on this host are held to them divided by the slowdown.\n"
    )
    out.append(profiles_table())
    out.append("## Budget and objectives {#budget}\n")
    out.append(
        '`budget:` maps a metric to a bound: `">= 0.95"`, `"<= 20"`, or a bare number, which '
        "takes the metric's direction (an upper bound on a metric where lower is better). "
        "`objectives:` lists metrics; the first is optimised. Either may name these metrics "
        "([units and how each is measured](metrics.md)):\n"
    )
    out.append(", ".join(f"`{n}`" for n, m in METRICS.items() if m.better) + "\n")
    return "\n".join(out)


def profiles_table() -> str:
    """The built-in device profiles (``edgeslim.devices.DEVICES``)."""
    from edgeslim.devices import DEVICES

    out = ["| profile | device | runtimes | budget on the device | emulation here | slowdown |"]
    out.append("|---|---|---|---|---|---:|")
    for p in DEVICES.values():
        budget = ", ".join(f"`{k}` {v}" for k, v in p.budget.items())
        emulation = ", ".join(f"`{k}: {v}`" for k, v in p.measure.items())
        out.append(
            f"| `{p.name}` | {cell(p.description)} | {', '.join(p.runtimes)} | {cell(budget)} "
            f"| {cell(emulation)} | {p.slowdown:g} |"
        )
    out.append("\nWhere the figures come from:\n")
    out += [f"- `{p.name}`: {p.source}" for p in DEVICES.values()]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------ the command line


def cli_reference() -> str:
    import typer

    from edgeslim.cli import app

    root = typer.main.get_command(app)
    out = []

    def visit(command: Any, path: list[str]) -> None:
        children = getattr(command, "commands", None) or {}
        if path:
            out.append(command_section(command, path, bool(children)))
        for name in sorted(children):
            visit(children[name], [*path, name])

    visit(root, [])
    return "\n".join(out)


def command_section(command: Any, path: list[str], has_children: bool) -> str:
    name = " ".join(["edgeslim", *path])
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = [p for p in command.params if p.param_type_name == "option"]
    usage = " ".join(
        [name, *(["[OPTIONS]"] if options else []), *(a.name.upper() for a in arguments)]
        + (["COMMAND"] if has_children else [])
    )
    lines = [f"## `{name}` {{#{'-'.join(path)}}}\n", f"```\n{usage}\n```\n"]
    for paragraph in (command.help or "").replace("``", "`").split("\n\n"):
        if paragraph.strip():
            lines.append(" ".join(paragraph.split()) + "\n")
    if arguments:
        lines.append("| argument | meaning |\n|---|---|")
        for a in arguments:
            lines.append(f"| `{a.name.upper()}` | {cell(getattr(a, 'help', '') or '')} |")
        lines.append("")
    shown = [o for o in options if o.name != "help"]
    if shown:
        lines.append("| option | default | meaning |\n|---|---|---|")
        for o in shown:
            names = ", ".join(f"`{n}`" for n in [*o.opts, *o.secondary_opts])
            if getattr(o, "is_flag", False):
                default = "off" if not o.default else "on"
            elif o.required:
                default = "required"
            elif o.default is None:
                default = ""
            else:
                default = f"`{o.default}`"
            lines.append(f"| {names} | {cell(default)} | {cell(o.help or '')} |")
        lines.append("")
    if command.epilog:
        codes = command.epilog.splitlines()
        lines.append(f"{codes[0]}\n")
        lines.append("| status | meaning |\n|---:|---|")
        for line in codes[1:]:
            status, _, meaning = line.partition(" ")
            lines.append(f"| {status} | {cell(meaning.strip())} |")
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------ the Python API


def api_reference() -> str:
    """One mkdocstrings block per public name of ``edgeslim/__init__.py``, at the module that
    defines it today (``_EXPORTS``), so moving a function between modules moves its entry."""
    import edgeslim

    out = []
    for name in sorted(edgeslim._EXPORTS):
        out.append(f"## `es.{name}` {{#{name.lower()}}}\n")
        out.append(f"::: {edgeslim._EXPORTS[name]}.{name}\n")
    for name in sorted(edgeslim._MODULES):
        out.append(f"## `es.{name}` {{#module-{name}}}\n")
        out.append(f"::: edgeslim.{name}\n")
    return "\n".join(out)


# ---------------------------------------------------------------------------- the metrics


def metrics_table() -> str:
    from edgeslim.measure import METRICS  # registers every family
    from edgeslim.measure.registry import FAMILIES

    family_of = {m.name: f for f in FAMILIES.values() for m in f.metrics}
    where = {"graph": "from the graph, on the host", "runtime": "in the worker, on the runtime"}
    rows = [
        "| metric | unit | better | measured | what |",
        "|---|---|---|---|---|",
    ]
    for name, metric in METRICS.items():
        family = family_of[name]
        place = where[family.stage] + (f"; {family.task} only" if family.task else "")
        better = metric.better or "(detail, not an objective)"
        rows.append(
            f"| `{name}` | {cell(metric.unit)} | {better} | {place} | {cell(metric.description)} |"
        )
    return "\n".join(rows) + "\n"


# ------------------------------------------------------------------------------ the layers


def contracts() -> list[dict[str, Any]]:
    from pathlib import Path

    import tomllib

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    return tomllib.loads(pyproject.read_text())["tool"]["importlinter"]["contracts"]


def summary(module: str) -> str:
    """A module's docstring, first sentence: what the code says it holds."""
    import importlib

    doc = (importlib.import_module(module).__doc__ or "").strip()
    first = " ".join(doc.split("\n\n")[0].split())
    return first.split(". ")[0].rstrip(".") if first else "(no docstring)"


def layers_table() -> str:
    """The import-linter contract of ``pyproject.toml``, top layer first, each module with the
    first sentence of its docstring: the page draws what CI enforces."""
    (layers,) = [c for c in contracts() if c["type"] == "layers"]
    (container,) = layers["containers"]
    rows = ["| layer | module | what it holds |", "|---:|---|---|"]
    for number, layer in zip(range(len(layers["layers"]), 0, -1), layers["layers"], strict=True):
        for i, name in enumerate(part.strip() for part in layer.split("|")):
            module = f"{container}.{name}"
            rows.append(f"| {number if i == 0 else ''} | `{module}` | {cell(summary(module))} |")
    return "\n".join(rows) + "\n"


GENERATORS: dict[str, Callable[[], str]] = {
    "layers": layers_table,
    "yaml-schema": yaml_schema,
    "cli": cli_reference,
    "api": api_reference,
    "metrics": metrics_table,
    "profiles": profiles_table,
}


def fill(markdown: str) -> str:
    """``markdown`` with every marker replaced by its generator's text."""

    def generated(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"unknown generated section {name!r}; known: {sorted(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(generated, markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return fill(markdown)
