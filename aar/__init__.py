"""aar: the Scale-level Audio Tokenizer (SAT) and next-scale AAR generation (arXiv 2408.09027)."""

from aar.audio import load_audio
from aar.codes import AudioCodes
from aar.conditioning.clap import ClapEncoder
from aar.config import AARConfig, SATConfig
from aar.generator import AARGenerator
from aar.tokenizer import SATTokenizer
from aar.version import __version__

__all__ = [
    "AARConfig", "AARGenerator", "AudioCodes", "ClapEncoder", "SATConfig", "SATTokenizer", "__version__",
    "load_audio",
]
