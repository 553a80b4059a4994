"""``aar demo``: a Gradio page to hear coarse-to-fine generation, variations, inpainting and tokens.

This package owns the page and nothing else: ``settings`` (limits and address), ``uploads`` (files
checked before they are read), ``pictures`` (spectrograms, token grids), ``engine`` (the work, no
Gradio), ``continuation`` and ``inpainting`` (editing a clip of any length), ``handlers`` and ``app``
(the page), ``server`` (serving it). It may import aar's public modules; only the command line
imports it. Gradio comes with the extra ``pip install "aar-audio[demo]"`` and is imported by
``handlers``, ``app`` and ``server.launch`` only.
"""

from .engine import DemoEngine, Knobs
from .server import launch, quiet_environment
from .settings import DemoSettings

__all__ = ["DemoEngine", "DemoSettings", "Knobs", "launch", "quiet_environment"]
