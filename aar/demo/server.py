"""Serving the page: a private temporary folder, telemetry off, the loopback address unless told.

Gradio reads some settings from the environment when it is imported or when an app is built, so
:func:`quiet_environment` runs first; :func:`launch` does both and starts the server.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from aar.demo.engine import DemoEngine
from aar.demo.settings import DemoSettings

#: Environment that keeps Gradio and the Hugging Face libraries from calling home.
QUIET = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_SSR_MODE": "False",
    "DO_NOT_TRACK": "1",
}


def quiet_environment(folder: str | os.PathLike | None = None) -> Path:
    """Set ``QUIET`` and point Gradio's upload and cache folder at ``folder`` (a fresh temp folder).

    Returns:
        The folder: uploads land there and every result is written there.
    """
    os.environ.update(QUIET)
    path = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="aar-demo-"))
    path.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(path)
    return path


def launch(engine: DemoEngine, *, folder: str | os.PathLike | None = None, block: bool = True):
    """Build the page for ``engine`` and serve it at ``engine.settings.host``:``port``.

    Args:
        engine: The loaded model and the limits.
        folder: The app's temporary folder; a fresh one by default, removed when a blocking server
            stops.
        block: Serve until interrupted; False returns at once with the server running.

    Returns:
        The Gradio app (running).
    """
    fresh = folder is None
    folder = quiet_environment(folder)
    from aar.demo.app import build, theme

    settings: DemoSettings = engine.settings
    app = build(engine, folder)
    app.queue(default_concurrency_limit=1, max_size=64)
    app.launch(server_name=settings.host, server_port=settings.port, share=False, inbrowser=False,
               max_file_size=settings.max_upload_bytes, allowed_paths=[], ssr_mode=False, pwa=False,
               mcp_server=False, quiet=True, footer_links=["api"], theme=theme(),
               prevent_thread_lock=not block, show_error=True)
    if block and fresh:  # the server has stopped: uploads and results go with it
        shutil.rmtree(folder, ignore_errors=True)
    return app
