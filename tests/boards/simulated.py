"""A board simulated honestly on this machine: a real OpenSSH server on a loopback port with a key
made for the test, a "device" Python that has only numpy and the runtime (no torch, no
edgeslim), and a TCP proxy in front of it that a test can cut like a dropped network link."""

from __future__ import annotations

import contextlib
import importlib.metadata as metadata
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from edgeslim.boards import BoardConfig

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def requirements(name: str) -> list[str]:
    """A distribution's required distributions, extras left out (as pip would install)."""
    found = []
    for line in metadata.requires(name) or []:
        if "extra ==" in line:
            continue
        found.append(re.split(r"[\s;<>=!~\[(]", line, maxsplit=1)[0])
    return found


def device_python(folder: Path, packages: list[str]) -> Path:
    """A fresh venv (no system site-packages, no pip) holding ``packages`` and what they require,
    linked from this environment's copies: what ``pip install numpy onnxruntime`` would give a
    board, without a download."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    todo, seen = list(packages), set()
    while todo:
        name = todo.pop()
        dist = metadata.distribution(name)
        key = dist.metadata["Name"].lower()
        if key in seen:
            continue
        seen.add(key)
        todo.extend(requirements(name))
        base = Path(dist.locate_file(""))
        for top in {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            source, target = base / top, site / top
            if source.exists() and not target.exists():
                target.symlink_to(source)
    return python


class SshServer:
    """``sshd -D`` on 127.0.0.1:PORT, logging in with ``client_key`` only; ``TMPDIR`` on the
    "board" is ``board_tmp``, so two servers here behave as two boards (their own locks)."""

    def __init__(self, folder: Path, client_key: Path | None = None) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.board_tmp = folder / "board-tmp"
        self.board_tmp.mkdir()
        self.host_key = folder / "host_key"
        self.client_key = client_key or folder / "client_key"  # another board's: one key, a pool
        for key in {self.host_key, self.client_key}:
            if not key.exists():
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
                )
        (folder / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        config = folder / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key}",
                    f"PidFile {folder / 'sshd.pid'}",
                    f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    "StrictModes no",
                    "UsePAM no",
                    f"SetEnv TMPDIR={self.board_tmp}",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation folder
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(folder / "sshd.log", "w"),  # noqa: SIM115  (closed with the process)
        )
        wait_for_port(self.port, self.proc, folder / "sshd.log")
        self.known_hosts = folder / "known_hosts"
        self.known_hosts.write_text(self.host_line(self.port))

    def host_line(self, port: int) -> str:
        kind, key = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"[127.0.0.1]:{port} {kind} {key}\n"

    @property
    def user(self) -> str:
        import getpass

        return getpass.getuser()

    def target(self, port: int | None = None) -> str:
        return f"ssh://{self.user}@127.0.0.1:{port or self.port}"

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.board_tmp.glob("edgeslim-run-*"))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def wait_for_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"sshd did not listen on {port}: {log.read_text()}")


def board_config(server: SshServer, python: Path, **changes) -> BoardConfig:
    settings = {
        "name": "loop",
        "ssh": [server.target()],
        "python": str(python),
        "identity": str(server.client_key),
        "known_hosts": str(server.known_hosts),
        "retries": 1,
        "retry_wait_s": 0.2,
        "connect_timeout_s": 5,
        **changes,
    }
    return BoardConfig.model_validate(settings)


class CuttableLink:
    """A TCP forwarder 127.0.0.1:PORT -> the server: ``cut()`` drops every open connection and
    refuses new ones, like a network cable pulled out; ``mend()`` accepts again."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.port = free_port()
        self.open: list[socket.socket] = []
        self.refusing = False
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.refusing = True
        for s in self.open:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self.open.clear()

    def mend(self) -> None:
        self.refusing = False

    def close(self) -> None:
        self.cut()
        self.listener.close()
