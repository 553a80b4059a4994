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

Owns: ``paired`` (mel, STFT, SI-SDR), ``speech`` (STOI, PESQ), ``distribution`` (FAD, ISc, KL),
``protocols``, ``kaiser_resample``; the networks ``vggish``, ``panns``, ``clap_space`` on the
``extractor`` contracts, their weights (``_pretrained``, ``_weights``) and ``cache``.
May import: ``aar.conditioning`` (CLAP), ``aar.loading``, ``aar.audio``, ``aar.errors``; never a
generator or tokenizer.
"""

from aar.loading.digest import weights_digest as weights_fingerprint
from aar.metrics.cache import EmbeddingCache
from aar.metrics.clap_space import ClapExtractor
from aar.metrics.distribution import frechet_distance, inception_score, inception_score_splits, kl_divergence
from aar.metrics.extractor import AudioClassifier, EmbeddingExtractor
from aar.metrics.paired import mel_distance, si_sdr, stft_distance
from aar.metrics.panns import PANNsCNN14, PANNsCNN14At16k, PANNsOutput
from aar.metrics.protocols import DEFAULT_PROTOCOL, PROTOCOLS, AudioLoading, Protocol, get_protocol
from aar.metrics.speech import optional_metrics, pesq, si_snr, stoi
from aar.metrics.vggish import VGGish

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
