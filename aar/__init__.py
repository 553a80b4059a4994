"""aar: the Scale-level Audio Tokenizer (SAT) and next-scale AAR generation (arXiv 2408.09027)."""

from .codes import AudioCodes
from .config import AARConfig, SATConfig
from .tokenizer import SATTokenizer

__version__ = "0.1.0"

__all__ = ["AARConfig", "AudioCodes", "SATConfig", "SATTokenizer", "__version__"]
