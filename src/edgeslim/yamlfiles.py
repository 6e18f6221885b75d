"""YAML a user hands us, read so that no file can hang the tool or build objects.

Hostile files are refused before anything validates (or formats) them: an experiment or devices
file is a few KB, so these limits leave a hundredfold room and keep a refusal under a second.
An alias bomb (nine aliases of nine aliases of ...) is a few lines that expand to billions of
items; the expansion is counted on the parsed node graph, before a Python object is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from edgeslim.errors import ConfigError

MAX_FILE_BYTES = 256 * 1024
MAX_VALUES = 100_000  # scalars, lists and mappings, each alias counted as a copy
MAX_TEXT_CHARS = 1_000_000  # characters of scalar text, each alias counted as a copy
MAX_DEPTH = 50  # levels of nesting


def article(what: str) -> str:
    return f"{'an' if what[:1] in 'aeiou' else 'a'} {what}"


def load_file(path: Path, what: str) -> Any:
    """A YAML file the user names: bounded in size and in expansion, safe tags only."""
    return load_yaml(read_bounded(path, what), str(path), what)


def read_bounded(path: Path, what: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a file the user names, refused past ``limit`` (never read whole: the path may
    be a huge file, or a device that never ends)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror})") from exc
    if len(data) > limit:
        raise ConfigError(
            f"{path}: too large for {article(what)} (over {limit // 1024} KB); "
            "is it the right file?"
        )
    return data


try:  # libyaml's parser: fast, and it refuses nesting deeper than 1000 levels itself
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader  # type: ignore[assignment]


def yaml_error(where: str, exc: yaml.YAMLError) -> ConfigError:
    """``FILE:LINE:COLUMN: not valid YAML: problem`` on one line."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
    context = getattr(exc, "context", None)
    text = f"{problem} ({context})" if context else problem
    return ConfigError(f"{where}{at}: not valid YAML: {' '.join(str(text).split())}")


def check_expansion(root: yaml.Node, where: str, what: str = "experiment file") -> None:
    """Refuse a document whose aliases expand it past the limits (an alias bomb: nine aliases
    of nine aliases of ... is a few lines that expand to billions of items), that nests too
    deeply, or that contains itself. The node graph is walked once, each node's expanded size
    remembered, so this takes time in proportion to the file, not to its expansion."""
    done: dict[int, tuple[int, int, int]] = {}  # node -> (values, characters, depth) expanded
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            children: list[yaml.Node] = []
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = list(node.value)
        if not closing:
            if key in done:
                continue
            if key in open_nodes:
                raise ConfigError(
                    f"{where}:{node.start_mark.line + 1}: an alias refers to a list or mapping "
                    "that contains it (a value that never ends)"
                )
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children)
            continue
        open_nodes.discard(key)
        sizes = [done[id(child)] for child in children]
        values = 1 + sum(s[0] for s in sizes)
        chars = (len(node.value) if isinstance(node, yaml.ScalarNode) else 0) + sum(
            s[1] for s in sizes
        )
        depth = 1 + max((s[2] for s in sizes), default=0)
        line = f"{where}:{node.start_mark.line + 1}"
        if values > MAX_VALUES:
            raise ConfigError(
                f"{line}: expands to over {MAX_VALUES:,} values (each alias *name counts as a "
                f"copy); {article(what)} needs a few hundred"
            )
        if chars > MAX_TEXT_CHARS:
            raise ConfigError(
                f"{line}: expands to over {MAX_TEXT_CHARS:,} characters of text (each alias "
                f"*name counts as a copy); {article(what)} needs a few thousand"
            )
        if depth > MAX_DEPTH:
            raise ConfigError(
                f"{line}: nested more than {MAX_DEPTH} levels deep (aliases included); "
                f"{article(what)} needs fewer than ten"
            )
        done[key] = (values, chars, depth)


def load_yaml(data: bytes | str, where: str, what: str = "experiment file") -> Any:
    """Safe YAML (no tags that build objects), refused if it expands past the limits."""
    loader = SafeLoader(data)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_expansion(node, where, what)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise yaml_error(where, exc) from exc
    except RecursionError as exc:  # the pure-Python parser composes nested values recursively
        raise ConfigError(
            f"{where}: nested more than {MAX_DEPTH} levels deep; {article(what)} needs "
            "fewer than ten"
        ) from exc
    finally:
        loader.dispose()
