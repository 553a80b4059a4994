"""aar: the Scale-level Audio Tokenizer (SAT) and next-scale AAR generation (arXiv 2408.09027)."""

from ._version import __version__
from .audio import load_audio
from .clap import ClapEncoder
from .codes import AudioCodes
from .config import AARConfig, SATConfig
from .generator import AARGenerator
from .tokenizer import SATTokenizer

__all__ = [
    "AARConfig", "AARGenerator", "AudioCodes", "ClapEncoder", "SATConfig", "SATTokenizer", "__version__",
    "load_audio",
]
