"""Fixtures for the board tests: a simulated board (sshd + a numpy-and-runtime-only Python)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.boards.simulated import SSHD, SshServer, device_python
from tests.ci import require


def require_sshd() -> None:
    require(Path(SSHD).exists(), "OpenSSH server not installed (apt-get install openssh-server)")


@pytest.fixture(scope="session")
def device_env(tmp_path_factory) -> Path:
    """The board's Python: numpy and onnxruntime, nothing else."""
    return device_python(tmp_path_factory.mktemp("device") / "venv", ["numpy", "onnxruntime"])


@pytest.fixture(scope="session")
def board_server(tmp_path_factory):
    require_sshd()
    server = SshServer(tmp_path_factory.mktemp("board-a"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def second_board(tmp_path_factory, board_server):
    """Another board of the same kind (same login key), for a pool."""
    server = SshServer(tmp_path_factory.mktemp("board-b"), client_key=board_server.client_key)
    yield server
    server.stop()
