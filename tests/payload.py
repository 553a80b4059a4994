"""A pickled payload for the tests that prove loaders never run code from a checkpoint."""

from __future__ import annotations

from pathlib import Path


def _touch(path: str) -> None:
    Path(path).write_text("the pickle ran code")


class Payload:
    """Unpickling this writes the file ``marker``: proof that a loader ran code from the file."""

    def __init__(self, marker: str | Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))
