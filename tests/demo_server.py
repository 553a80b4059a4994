"""A running ``aar demo`` server on the fixture model, shared by the demo tests (not collected)."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from aar import AARGenerator

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "official_small"
MODEL = FIXTURES / "aar_official.pth"
TOKENIZER = FIXTURES / "sat_official.pth"


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fixture_generator() -> AARGenerator:
    return AARGenerator.from_pretrained(MODEL, tokenizer=TOKENIZER)


@contextlib.contextmanager
def running_demo(folder: Path, **limits):
    """Serve the demo of the fixture model from ``folder``; yields (url, engine)."""
    from aar.demo import DemoEngine, DemoSettings, launch

    saved = dict(os.environ)
    settings = DemoSettings(port=free_port(), **limits)
    engine = DemoEngine(fixture_generator(), "official_small", settings)
    app = launch(engine, folder=folder, block=False)
    try:
        yield f"http://127.0.0.1:{settings.port}/", engine
    finally:
        app.close()
        os.environ.clear()
        os.environ.update(saved)
