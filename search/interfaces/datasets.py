"""`stacktune datasets`: the built-in datasets, as a table or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict


def datasets_command(*, as_json: bool) -> int:
    """Prints every built-in dataset; returns 0."""
    from stacktune.datasets import list_datasets

    rows = [asdict(info) for info in list_datasets()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    columns = ("name", "task", "length", "channels", "classes", "source")
    widths = {c: max(len(c), *(len(str(r[c] if r[c] is not None else "-")) for r in rows)) for c in columns}
    # The last column unpadded: no line ends in spaces.
    print("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(str(row[c] if row[c] is not None else "-").ljust(widths[c]) for c in columns).rstrip())
    return 0
