"""Reading a documentation page's fenced blocks and running them in order (``tests/test_docs.py``).

What a block means:
- a fence with a title, ```` ```yaml title="proj/exp.yaml" ````: a file; it is written there
  (relative to the page's folder) for the blocks after it, and not run;
- ```` ```bash ```` (or ``sh``, ``shell``): each command runs in bash, a trailing ``\\`` joining
  lines; a comment line is skipped;
- ```` ```console ````: the lines starting with ``$ `` are commands; the others are their output
  and are not compared (output differs between machines);
- ```` ```python ````: a script of its own, run by this Python in the page's folder (each block
  stands alone, as a reader may copy one);
- anything else (``text``, ``yaml`` or ``json`` without a title): shown, not run.

An HTML comment on the lines just before a fence changes that:
- ``<!-- docs-test: skip (why) -->``: not run (the set-up command itself, a command for the
  board's own shell);
- ``<!-- docs-test: board NAME -->``: needs a board called NAME; the test makes one, the
  simulated board of ``tests/boards`` (an sshd on a loopback port and a Python with numpy and the
  runtime only), in a devices file that ``EDGESLIM_DEVICES`` names for the rest of the page;
- ``<!-- docs-test: postgres -->``: every ``postgresql://...`` URL in the block is replaced by a
  test server's (``EDGESLIM_TEST_POSTGRES``, or one started with ``.ci/postgres``);
- ``<!-- docs-test: status N -->``: each command must end with status N (an error shown on
  purpose).
Without sshd or PostgreSQL the page is skipped, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.ci import missing

ROOT = Path(__file__).resolve().parents[1]
SHELLS = {"bash", "sh", "shell"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+)(?P<info>.*)$")
DIRECTIVE = re.compile(r"^\s*<!-- docs-test: (?P<what>.+?) -->\s*$")
KNOWN = ("skip", "board", "postgres", "status")
TIMEOUT_S = 900  # one command; the slowest (the demo) takes about a minute


@dataclass
class Block:
    lang: str
    title: str | None
    body: str
    directives: list[str] = field(default_factory=list)
    line: int = 0  # where the fence opens, for messages

    def directive(self, word: str) -> str | None:
        """The rest of the directive that starts with ``word`` ("" when it has none)."""
        for d in self.directives:
            if d == word or d.startswith(word + " "):
                return d[len(word) :].strip()
        return None

    @property
    def runs(self) -> bool:
        if self.directive("skip") is not None:
            return False
        return bool(self.title) or self.lang in SHELLS | {"console", "python"}

    def commands(self) -> list[str]:
        if self.lang == "console":
            return [line[2:] for line in self.body.splitlines() if line.startswith("$ ")]
        joined = re.sub(r"\\\n\s*", "", self.body)
        return [
            line.strip()
            for line in joined.splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]


def blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown page, in order, with the directives just before each."""
    found: list[Block] = []
    lines = text.splitlines()
    pending: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = DIRECTIVE.match(line)
        fence = FENCE.match(line)
        if directive:
            what = directive.group("what")
            if what.split()[0] not in KNOWN:
                raise ValueError(f"line {i + 1}: unknown directive {what!r}; known: {KNOWN}")
            pending.append(what)
        elif fence:
            ticks, info = fence.group("fence", "info")
            lang, _, attrs = info.strip().partition(" ")
            title = re.search(r'title="([^"]+)"', attrs)
            end = next(
                (j for j in range(i + 1, len(lines)) if lines[j].strip() == ticks),
                None,
            )
            if end is None:
                raise ValueError(f"line {i + 1}: a ``` block is not closed")
            body = textwrap.dedent("\n".join(lines[i + 1 : end]))
            found.append(
                Block(lang, title.group(1) if title else None, body + "\n", pending, i + 1)
            )
            pending = []
            i = end
        elif line.strip():
            pending = []  # a directive applies only to the fence right after it
        i += 1
    return found


def environment() -> dict[str, str]:
    """A user's shell: this Python's ``edgeslim`` first on the PATH, no PYTHONPATH (a model's
    module must be found beside the experiment file), a wide terminal for whole lines."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def check(out: subprocess.CompletedProcess, where: str, what: str, status: int) -> None:
    assert out.returncode == status, (
        f"{where}: {what!r} ended with status {out.returncode}, not {status}\n"
        f"--- stdout (end)\n{out.stdout[-3000:]}\n--- stderr (end)\n{out.stderr[-3000:]}"
    )


def run_page(page: Path, folder: Path) -> list[Block]:
    """Run ``page``'s blocks in ``folder``, in order; returns the blocks that ran. A block that
    fails raises AssertionError naming the page and line."""
    env = environment()
    ran = []
    servers: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for block in blocks(page.read_text()):
            if not block.runs:
                continue
            where = f"{page.name}:{block.line}"
            if block.title:
                target = folder / block.title
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.body)
                ran.append(block)
                continue
            body = block.body
            board = block.directive("board")
            if board is not None and "EDGESLIM_DEVICES" not in env:
                env["EDGESLIM_DEVICES"] = str(stack.enter_context(simulated_board(board, folder)))
            if block.directive("postgres") is not None:
                if "postgres" not in servers:  # one server for the page: its blocks share a study
                    servers["postgres"] = stack.enter_context(postgres())
                body = re.sub(r"postgresql://[^\s\"']+", servers["postgres"], body)
            status = int(block.directive("status") or 0)
            if block.lang == "python":
                out = subprocess.run(
                    [sys.executable, "-c", body],
                    cwd=folder,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=TIMEOUT_S,
                )
                check(out, where, "the Python snippet", status)
            else:
                for command in Block(block.lang, None, body).commands():
                    out = subprocess.run(
                        ["bash", "-o", "pipefail", "-c", command],
                        cwd=folder,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=TIMEOUT_S,
                    )
                    check(out, where, command, status)
            ran.append(block)
    return ran


@contextlib.contextmanager
def simulated_board(name: str, folder: Path) -> Iterator[Path]:
    """A devices file naming the simulated board ``name``; yields the file."""
    from tests.boards.simulated import SSHD, SshServer, board_config, device_python

    if not Path(SSHD).exists():
        missing("OpenSSH server not installed (apt-get install openssh-server)")
    python = device_python(folder / ".board-python", ["numpy", "onnxruntime"])
    server = SshServer(folder / ".board")
    try:
        config = board_config(server, python, name=name)
        settings = config.model_dump(mode="json", exclude_defaults=True, exclude={"name"})
        devices = folder / ".board" / "devices.yaml"
        import yaml

        devices.write_text(yaml.safe_dump({name: settings}))
        yield devices
    finally:
        server.stop()


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A PostgreSQL URL: ``EDGESLIM_TEST_POSTGRES``, or a throw-away server (``.ci/postgres``)."""
    url = os.environ.get("EDGESLIM_TEST_POSTGRES")
    if url:
        yield url
        return
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        missing("PostgreSQL is not installed (apt-get install postgresql)")
    data = Path(f"/tmp/edgeslim-docs-pg-{os.getpid()}")
    port = str(40000 + os.getpid() % 20000)
    script = str(ROOT / ".ci" / "postgres")
    started = subprocess.run([script, "start", str(data), port], capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([script, "stop", str(data)], check=False, capture_output=True)
