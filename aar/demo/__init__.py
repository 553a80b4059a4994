"""``aar demo``: a Gradio page to hear coarse-to-fine generation, variations, inpainting and tokens.

Owns: the page and nothing else: ``settings`` (limits and address), ``uploads`` (files checked
before they are read), ``pictures`` (spectrograms, token grids), ``engine`` (the work, no Gradio),
``continuation`` and ``inpainting`` (editing a clip of any length), ``handlers`` and ``app`` (the
page), ``server`` (serving it).
May import: aar's public faces and the packages below them; only the command line imports it.

Gradio comes with the extra ``pip install "aar-audio[demo]"`` and is imported by ``handlers``,
``app`` and ``server.launch`` only.
"""

from aar.demo.engine import DemoEngine, Knobs
from aar.demo.server import launch, quiet_environment
from aar.demo.settings import DemoSettings

__all__ = ["DemoEngine", "DemoSettings", "Knobs", "launch", "quiet_environment"]
