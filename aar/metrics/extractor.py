"""What the distribution metrics need from a network: the extractor and classifier interfaces.

FAD needs an :class:`EmbeddingExtractor` (audio -> one vector per clip); Inception Score and KL need
an :class:`AudioClassifier` (audio -> class probabilities). Any object with these attributes and
methods works; ``VGGish``, ``PANNsCNN14`` and ``ClapExtractor`` are the ones aar ships.

Legend: B batch, T samples, D embedding size, C classes, n frames (examples) per clip.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from aar.audio import as_audio_batch, to_mono


@runtime_checkable
class EmbeddingExtractor(Protocol):
    """Audio -> embeddings, for Fréchet distances.

    Attributes:
        name: A short name that identifies the extractor (and, with ``fingerprint`` if present, keys
            the embedding cache).
        sample_rate: The rate ``embed`` expects, in Hz.
        dim: The embedding size D.
    """

    name: str
    sample_rate: int
    dim: int

    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) audio at ``sample_rate`` -> (B, D) float embeddings, one per clip."""
        ...


@runtime_checkable
class AudioClassifier(Protocol):
    """Audio -> class probabilities, for Inception Score and KL divergence.

    Attributes:
        name: A short name that identifies the classifier.
        sample_rate: The rate ``probs`` expects, in Hz.
        num_classes: The number of classes C.
    """

    name: str
    sample_rate: int
    num_classes: int

    def probs(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) audio at ``sample_rate`` -> (B, C) class probabilities.

        A classifier that also has ``logits(wav) -> (B, C)`` (as :class:`PANNsCNN14` does) is read
        through its logits by ``aar.evaluation``: softmax for ISc and KL, sigmoid for the sigmoid KL,
        as audioldm_eval reads CNN14. Without it, ``probs`` must give distributions (rows summing to 1).
        """
        ...


def mono_batch(wav, name: str = "wav") -> torch.Tensor:
    """Validate audio and shape it (B, 1, T) float32; (T,) and (B, 1, T) are accepted, channels averaged.

    Raises:
        TypeError: not a tensor/array of float or int16/int32 PCM.
        ValueError: a 2-D input (ambiguous: pass (B, 1, T) or (T,)), no samples, or NaN/Inf values.
    """
    if getattr(wav, "ndim", None) == 2:
        raise ValueError(
            f"{name} must be shaped (B, 1, T) or (T,), got 2 dims {tuple(wav.shape)}: add the channel "
            "axis (wav[:, None] for a batch of mono clips, wav[None] for one multi-channel clip)"
        )
    return to_mono(as_audio_batch(wav, name))
