"""The system's OpenSSH client, driven safely: key-based authentication only (no password is ever
asked for or stored), the host key checked against known_hosts (an unknown or changed key is
refused, never accepted silently), a timeout on connecting and a keep-alive that notices a dropped
connection, and every remote argument quoted for the remote shell.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import shlex
import subprocess
import threading
from dataclasses import dataclass
from typing import IO, Any

from edgeslim.errors import BoardError, BoardFault, short

TARGET = re.compile(r"(ssh://)?([A-Za-z0-9._-]+@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:\d+)?")
TARGET_RULE = "user@host, host, or ssh://user@host:port"


def check_target(value: str) -> str:
    """An SSH destination that cannot be taken for an option or carry shell syntax."""
    if not TARGET.fullmatch(value) or value.startswith("-"):  # fullmatch: no final newline
        raise ValueError(f"{short(value)} is not an SSH destination ({TARGET_RULE})")
    return value


@dataclass(frozen=True)
class SshOptions:
    identity: str | None = None  # private key; default: the user's keys and ssh-agent
    known_hosts: str | None = None  # default: ~/.ssh/known_hosts
    connect_timeout_s: float = 10.0
    alive_interval_s: int = 5  # a dropped connection is noticed after about 3 of these


def ssh_argv(target: str, remote: list[str], options: SshOptions) -> list[str]:
    """``ssh ... TARGET 'quoted remote command'``: the remote shell sees each of ``remote`` as
    one word, whatever it holds."""
    argv = [
        "ssh",
        "-T",  # no terminal: bytes in, bytes out
        "-o", "BatchMode=yes",  # never prompt (for a password, or to accept a key)
        "-o", "StrictHostKeyChecking=yes",
        "-o", "PasswordAuthentication=no",
        "-o", "KbdInteractiveAuthentication=no",
        "-o", f"ConnectTimeout={max(1, round(options.connect_timeout_s))}",
        "-o", f"ServerAliveInterval={options.alive_interval_s}",
        "-o", "ServerAliveCountMax=3",
    ]  # fmt: skip
    if options.identity:
        argv += ["-i", options.identity, "-o", "IdentitiesOnly=yes"]
    if options.known_hosts:
        argv += ["-o", f"UserKnownHostsFile={options.known_hosts}"]
    return [*argv, "--", target, " ".join(shlex.quote(arg) for arg in remote)]


def no_client() -> BoardError:
    return BoardError(
        "the OpenSSH client (ssh) is not installed here: apt-get install openssh-client "
        "(or your system's equivalent)"
    )


def failure(target: str, stderr: str, returncode: int | None) -> BoardError:
    """What went wrong, from ssh's own words: a host-key or login problem is the user's to fix
    (not retried); anything else is a connection that may come back (retried)."""
    said = " | ".join(line for line in stderr.strip().splitlines()[-4:] if line)
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
        return BoardError(
            f"{target}: its host key has CHANGED since it was added to known_hosts; if the "
            "board was reinstalled, check the new key's fingerprint on the board and replace the "
            f"old entry (ssh-keygen -R HOST); otherwise do not connect ({said})"
        )
    if "Host key verification failed" in stderr:
        return BoardError(
            f"{target}: its host key is not in known_hosts, and edgeslim never accepts an "
            "unknown key: connect once with `ssh` and check the fingerprint, or add the key "
            f"with ssh-keyscan after checking it ({said})"
        )
    if "Permission denied" in stderr:
        return BoardError(
            f"{target}: the board refused the login; edgeslim logs in with a key only (set "
            f"`identity:` or load the key into ssh-agent) ({said})"
        )
    if "Could not resolve hostname" in stderr:
        return BoardError(f"{target}: unknown host name ({said})")
    if returncode not in (255, None):  # ssh itself worked: the command on the board failed
        return BoardError(
            f"{target}: the command on the board failed (exit code {returncode}): "
            f"{said or 'no message'}"
        )
    code = f"exit code {returncode}" if returncode is not None else "no answer"
    return BoardFault(f"{target}: connection lost or refused ({code}): {said or 'no message'}")


class Channel:
    """One ssh process running one remote command, read as JSON lines with timeouts."""

    def __init__(self, target: str, remote: list[str], options: SshOptions) -> None:
        self.target = target
        try:
            self.proc = subprocess.Popen(
                ssh_argv(target, remote, options),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except FileNotFoundError:
            raise no_client() from None
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.stderr: list[bytes] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True).start()

    def _pump(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)  # end of output: the command ended or the connection dropped

    def _drain(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.stderr.append(line)

    def receive(self, timeout_s: float, waiting_for: str) -> dict[str, Any]:
        """The next message; a BoardError if the connection ends or ``timeout_s`` passes."""
        try:
            line = self.lines.get(timeout=timeout_s)
        except queue.Empty:
            self.close()
            raise BoardFault(
                f"{self.target}: no answer for {timeout_s:g} s while {waiting_for}"
            ) from None
        if line is None:
            code = self.close()
            raise failure(self.target, b"".join(self.stderr).decode(errors="replace"), code)
        try:
            return json_message(line)
        except ValueError:
            self.close()
            raise BoardError(
                f"{self.target}: unexpected output from the board while {waiting_for}: "
                f"{line[:200]!r} (a login banner or shell profile that prints to stdout?)"
            ) from None

    def send(self, data: bytes) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the connection is gone: receive() reports why

    def close(self) -> int | None:
        """End the session: closing stdin tells the board to stop and clean up."""
        if self.proc.stdin and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def json_message(line: bytes) -> dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict) or "kind" not in message:
        raise ValueError(line)
    return message


def run(target: str, remote: list[str], options: SshOptions, timeout_s: float) -> str:
    """Run a short remote command and return its stdout (``devices check``'s probe)."""
    try:
        done = subprocess.run(
            ssh_argv(target, remote, options),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise BoardFault(f"{target}: no answer for {timeout_s:g} s") from None
    except FileNotFoundError:
        raise no_client() from None
    if done.returncode != 0:
        raise failure(target, done.stderr, done.returncode)
    return done.stdout
