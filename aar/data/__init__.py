"""Tokenize whole corpora: Hugging Face datasets, Ray Data, or a folder of audio files.

Optional dependencies are imported when used: ``pip install "aar-audio[data]"`` (datasets, pyarrow)
for :func:`tokenize_dataset` and :func:`tokenize_folder`, ``pip install "aar-audio[ray]"`` for
:func:`ray_tokenize` and ``tokenize_folder(..., ray_address=...)``.
"""

from .folder import TokenizeSummary, list_audio_files, tokenize_folder
from .hf import tokenize_dataset
from .ray import ray_tokenize

__all__ = ["TokenizeSummary", "list_audio_files", "ray_tokenize", "tokenize_dataset", "tokenize_folder"]
