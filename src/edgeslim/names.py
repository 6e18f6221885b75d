"""What a name may be (a run, a candidate, a board: each names a file or folder) and the
"did you mean" that follows an unknown one, so every message spells them the same way."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from edgeslim.errors import short

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")  # fullmatch: no final newline slips by
NAME_RULE = "1-100 letters, digits, '.', '_', '+' or '-', starting with a letter or digit"


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """`` (did you mean 'epochs'?)`` for a near miss among ``choices``, else nothing."""
    if not isinstance(word, str) or not word:
        return ""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close and len(word) >= 4:  # arena_kb -> tensor_arena_kb
        close = (
            [c for c in choices if word in c][:1] if sum(word in c for c in choices) == 1 else []
        )
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_name(value: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"{short(value)} is not a valid name ({NAME_RULE})")
    return value
