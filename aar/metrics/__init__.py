"""Evaluation metrics: reconstruction distances, Fréchet distance, Inception Score and KL divergence,
and the networks whose embeddings and class probabilities they are computed on.

Reconstruction (paired audio, one value per item): :func:`mel_distance`, :func:`stft_distance`,
:func:`si_sdr`, and with the ``eval`` extra :func:`stoi` and :func:`pesq`. Distributions:
:func:`frechet_distance` on embeddings from an :class:`EmbeddingExtractor` (:class:`VGGish`,
:class:`PANNsCNN14`, :class:`ClapExtractor`), :func:`inception_score` and :func:`kl_divergence` on
probabilities from an :class:`AudioClassifier` (:class:`PANNsCNN14`, :class:`PANNsCNN14At16k`).
:class:`EmbeddingCache` keeps per-file embeddings on disk. Each metric reproduces a named reference
tool; a :class:`Protocol` (:data:`PROTOCOLS`, :func:`get_protocol`) fixes which one for every number
``aar eval`` reports. :func:`weights_fingerprint` hashes every weight of a module. See
docs/evaluation.md for the definitions, the tools and the measured agreement.
"""

from ._weights import fingerprint as weights_fingerprint
from .cache import EmbeddingCache
from .clap import ClapExtractor
from .distribution import frechet_distance, inception_score, inception_score_splits, kl_divergence
from .extractor import AudioClassifier, EmbeddingExtractor
from .optional import optional_metrics, pesq, si_snr, stoi
from .panns import PANNsCNN14, PANNsCNN14At16k, PANNsOutput
from .protocols import DEFAULT_PROTOCOL, PROTOCOLS, AudioLoading, Protocol, get_protocol
from .reconstruction import mel_distance, si_sdr, stft_distance
from .vggish import VGGish

__all__ = [
    "DEFAULT_PROTOCOL",
    "PROTOCOLS",
    "AudioLoading",
    "Protocol",
    "get_protocol",
    "AudioClassifier",
    "ClapExtractor",
    "EmbeddingCache",
    "EmbeddingExtractor",
    "PANNsCNN14",
    "PANNsCNN14At16k",
    "PANNsOutput",
    "VGGish",
    "frechet_distance",
    "inception_score",
    "inception_score_splits",
    "kl_divergence",
    "mel_distance",
    "optional_metrics",
    "pesq",
    "si_sdr",
    "si_snr",
    "stft_distance",
    "stoi",
    "weights_fingerprint",
]
