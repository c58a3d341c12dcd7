"""Small English helpers the verdict, the warnings and the report share, so a list reads the same everywhere."""

from __future__ import annotations

from typing import Iterable, Sequence


def join(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def depths_phrase(depths: Iterable[int]) -> str:
    """'depth 1', 'depths 1 and 3', 'depths 1, 2 and 3'."""
    depths = [str(d) for d in depths]
    return ("depth " if len(depths) == 1 else "depths ") + join(depths)
