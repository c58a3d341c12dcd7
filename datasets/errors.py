"""The one exception type that data problems raise."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset that cannot be loaded or prepared; the message is always one line."""

    def __init__(self, message: str) -> None:
        # Messages may embed text from pandas or a file; logs and the CLI expect one line.
        super().__init__(" ".join(str(message).split("\n")).strip())
