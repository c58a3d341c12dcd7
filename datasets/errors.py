"""The one exception type that data problems raise, and how values and sizes are quoted in its messages."""

from __future__ import annotations

import reprlib
from typing import Any

SHOWN = 60  # characters of a value quoted in a message


class DataError(ValueError):
    """A dataset that cannot be loaded or prepared; the message is always one line."""

    def __init__(self, message: str) -> None:
        # Messages may embed text from pandas or a file; logs and the CLI expect one line.
        super().__init__(" ".join(str(message).split("\n")).strip())


class _Clipped(reprlib.Repr):
    """A repr that looks at no more of a value than a message can show: a few items, a few levels, short strings.

    Strings keep at least SHOWN characters of their start, so the cut text below is a prefix of the full repr.
    """

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxdict = 8
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdeque = self.maxarray = 12
        self.maxstring = self.maxlong = self.maxother = 2 * SHOWN + 8


_CLIPPED = _Clipped()


def shown(value: Any, limit: int = SHOWN) -> str:
    """`repr(value)` cut to `limit` characters, built without ever writing out a huge or deeply nested value."""
    try:
        text = _CLIPPED.repr(value)
    except ValueError:  # an integer too long for Python to print
        return "a number too long to show"
    return clip(text, limit)


def clip(text: str, limit: int = SHOWN) -> str:
    """`text` cut to `limit` characters, the cut marked with `...`."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def byte_size(count: int) -> str:
    """A file size in words: `812 bytes`, `1 MiB`, `2.5 GiB`."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            amount = count / scale
            return f"{amount:.0f} {unit}" if count % scale == 0 else f"{amount:.1f} {unit}"
    return f"{count} bytes"
