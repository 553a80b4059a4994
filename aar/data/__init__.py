"""Tokenize whole corpora: Hugging Face datasets, Ray Data, or a folder of audio files.

Optional dependencies are imported when used: ``pip install "aar-audio[data]"`` (datasets, pyarrow)
for :func:`tokenize_dataset` and :func:`tokenize_folder`, ``pip install "aar-audio[ray]"`` for
:func:`ray_tokenize` and ``tokenize_folder(..., ray_address=...)``.

Owns: ``batch`` (one Arrow batch tokenized row by row, the core every path shares), ``hf``, ``ray``
and ``folder`` (the three entry points), ``runners`` (where a folder's work runs: here, in worker
processes or on Ray).
May import: ``aar.tokenizer`` and what lies below it (``aar.audio``, ``aar.loading``, ``aar.errors``).
"""

from aar.data.folder import TokenizeSummary, list_audio_files, tokenize_folder
from aar.data.hf import tokenize_dataset
from aar.data.ray import ray_tokenize

__all__ = ["TokenizeSummary", "list_audio_files", "ray_tokenize", "tokenize_dataset", "tokenize_folder"]
