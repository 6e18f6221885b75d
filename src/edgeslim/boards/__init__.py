"""Boards reached over SSH: the device axis beyond this host (DESIGN.md, "Three plug-in axes")."""

from edgeslim.boards.board import Board, BoardConfig
from edgeslim.boards.registry import (
    board_config,
    board_named,
    boards,
    calibration,
    devices_file,
    find_board,
    save_calibration,
)

__all__ = [
    "Board",
    "BoardConfig",
    "board_config",
    "board_named",
    "boards",
    "calibration",
    "devices_file",
    "find_board",
    "save_calibration",
]
