"""Evaluation protocols: which reference tool each reported number reproduces, and how.

A number such as "ISc 7.3" or "mel distance 1.1" means little without the tool and settings behind
it: the network's rate, the resampler, the readout, the splits and seed, the eps, the padding. A
:class:`Protocol` fixes all of them for every metric ``aar eval`` reports, and names the reference
tool (with its version) each metric reproduces. ``aar eval ... --protocol NAME`` picks one; the JSON
report and the table record it. The protocols:

* ``paper`` (the default): the AAR paper's metrics as closely as its sources allow. Mel distance: the
  official repository's mel loss (``losses.py`` ``l_f``); STFT distance: auraloss's
  ``MultiResolutionSTFTLoss()`` (the repository defines none); FAD, ISc and KL: audioldm_eval, the
  tool that prints exactly this trio for AudioLDM-style tables (the repository has no scoring script,
  so both readings are assumptions, stated in docs/evaluation.md).
* ``audioldm``: FAD, ISc and KL as audioldm_eval computes them; the spectral distances, which it does
  not define, as in ``paper``.
* ``torchvggish``: FAD as torchvggish and frechet-audio-distance compute it (channels averaged,
  resampy's ``kaiser_best`` resampling, reimplemented in :mod:`aar.metrics.kaiser_resample`); the
  rest as in ``paper``.
* ``dac``: the mel distance of DAC's shipped configs; the rest as in ``paper``.
* ``fadtk``: FAD as fadtk computes it with its ``vggish`` model (its Kaiser-windowed resampling, the
  16-bit write and read, 1-s padding, float16 frames merged per file; :mod:`aar.metrics.fadtk`);
  the rest as in ``paper``.

``paper``, ``audioldm`` and ``dac`` resample with torchaudio's sinc resampler
(``torchaudio.functional.resample`` at its defaults), which is what audioldm_eval uses. The report's
``resampler`` field names the resampler of the FAD embeddings.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from aar.audio import load_audio, resample, to_mono
from aar.metrics.distribution import frechet_distance
from aar.metrics.fadtk import FADTK, MIN_SAMPLES, fadtk_distance, fadtk_resample, pcm16_round_trip
from aar.metrics.kaiser_resample import kaiser_resample

#: The resamplers, as reports name them.
RESAMPLERS = {
    "torchaudio": "torchaudio.functional.resample (sinc interpolation, Hann window, defaults)",
    "resampy": "resampy.resample kaiser_best (reimplemented in aar.metrics.kaiser_resample)",
    "fadtk": "torchaudio.transforms.Resample with fadtk's settings (sinc_interp_kaiser, lowpass_filter_width "
             "64, rolloff 0.9475937167399596, beta 14.769656459379492)",
}
#: The versions the reference tools were read and run at (see tests/fixtures/reference/README.md).
AUDIOLDM_EVAL = "audioldm_eval 0.0.5 (haoheliu/audioldm_eval@8dc07ee)"
OFFICIAL = "official AAR repository (qiuk2/AAR@eaaf1bc)"
DAC = "descript-audio-codec 1.0.0 (descriptinc/descript-audio-codec@c7cfc5d) with descript-audiotools 0.7.4"
AURALOSS = "auraloss 0.4.0 (csteinmetz1/auraloss@0853e9e)"
TORCHVGGISH = "torchvggish (harritaylor/torchvggish@f3f9096) with resampy 0.4.3"
TORCHMETRICS = "torchmetrics scale_invariant_signal_distortion_ratio(zero_mean=True)"


@dataclass(frozen=True)
class AudioLoading:
    """How a file (or a window) becomes a network's input.

    Attributes:
        channel: ``"mean"`` averages the channels; ``"first"`` keeps the first (audioldm_eval).
        remove_dc: Subtract the mean of the clip before resampling (audioldm_eval).
        min_samples: Zero-pad at the end, after resampling, to at least this many samples
            (audioldm_eval: 32000).
        resampler: ``"torchaudio"`` (``torchaudio.functional.resample`` at its defaults, as
            audioldm_eval), ``"resampy"`` (resampy's ``kaiser_best``, as torchvggish and
            frechet-audio-distance; :func:`aar.metrics.kaiser_resample.kaiser_resample`) or
            ``"fadtk"`` (:func:`aar.metrics.fadtk.fadtk_resample`).
        pcm16: After resampling, write and read back as 16-bit PCM
            (:func:`aar.metrics.fadtk.pcm16_round_trip`, as fadtk does).
    """

    channel: str = "mean"
    remove_dc: bool = False
    min_samples: int = 0
    resampler: str = "torchaudio"
    pcm16: bool = False

    def prepare(self, wav_CT: torch.Tensor, rate: int, sample_rate: int) -> torch.Tensor:
        """(C, T) audio at ``rate`` -> (1, 1, T') float32 at ``sample_rate``, as the tool prepares it."""
        wav_11T = wav_CT[None, :1] if self.channel == "first" else to_mono(wav_CT[None])
        if self.remove_dc:
            wav_11T = wav_11T - wav_11T.mean()
        if self.resampler == "resampy":
            wav_11T = kaiser_resample(wav_11T, rate, sample_rate)
        elif self.resampler == "fadtk":
            wav_11T = fadtk_resample(wav_11T, rate, sample_rate)
        else:
            wav_11T = resample(wav_11T, rate, sample_rate)
        if self.pcm16:
            wav_11T = pcm16_round_trip(wav_11T)
        if wav_11T.shape[-1] < self.min_samples:
            wav_11T = F.pad(wav_11T, (0, self.min_samples - wav_11T.shape[-1]))
        return wav_11T

    def load(self, path: str | os.PathLike, sample_rate: int) -> torch.Tensor:
        """Read a file and :meth:`prepare` it: (1, 1, T) float32 at ``sample_rate``.

        Raises:
            ValueError: unreadable, or NaN/Inf samples.
            FileNotFoundError: no such file.
        """
        wav_CT, rate = load_audio(path)
        if not torch.isfinite(wav_CT).all():
            raise ValueError(f"audio file {path} contains NaN or Inf samples")
        return self.prepare(wav_CT, rate, sample_rate)

    @property
    def key(self) -> str:
        """A short tag for cache entries; empty for the plain loading (mean of channels, nothing else)."""
        parts = (["first"] if self.channel == "first" else []) + (["dc"] if self.remove_dc else [])
        parts += [f"pad{self.min_samples}"] if self.min_samples else []
        parts += [self.resampler] if self.resampler != "torchaudio" else []
        parts += ["pcm16"] if self.pcm16 else []
        return "-".join(parts)


PLAIN = AudioLoading()
#: audioldm_eval's ``WaveDataset.read_from_file``: first channel, mean removed, resampled, padded to 32000.
AUDIOLDM_LOADING = AudioLoading(channel="first", remove_dc=True, min_samples=32_000)
#: torchvggish's ``waveform_to_examples`` (and frechet-audio-distance): channels averaged, resampy.
TORCHVGGISH_LOADING = AudioLoading(resampler="resampy")
#: fadtk's ``load_audio`` and ``load_wav`` for VGGish: channels averaged, its resampler, 16-bit PCM, 1 s.
FADTK_LOADING = AudioLoading(resampler="fadtk", pcm16=True, min_samples=MIN_SAMPLES)


@dataclass(frozen=True)
class Protocol:
    """The settings and reference tools of every metric ``aar eval`` reports.

    Attributes:
        name: The protocol's name (``--protocol``).
        summary: One line on what it reproduces.
        mel: The ``aar.metrics.mel_distance`` definition.
        stft: The ``aar.metrics.stft_distance`` definition.
        isc_splits: Inception Score splits.
        isc_seed: The shuffle's seed before splitting.
        kl_eps: Added to the generated side's probabilities in KL.
        loading: How files and windows are prepared for the extractor (FAD).
        classifier_loading: How files are prepared for the classifier (ISc, KL).
        tools: Metric name -> the reference tool (and version) its number reproduces.
        statistics: How FAD fits its Gaussians: ``"pooled"`` (mean and covariance of every
            embedding of the set, :func:`aar.metrics.frechet_distance`) or ``"fadtk"`` (float16 frames
            merged per file, :func:`aar.metrics.fadtk.fadtk_distance`).
    """

    name: str
    summary: str
    mel: str
    stft: str
    isc_splits: int = 10
    isc_seed: int | None = 2020
    kl_eps: float = 1e-6
    loading: AudioLoading = field(default=AUDIOLDM_LOADING)
    classifier_loading: AudioLoading = field(default=AUDIOLDM_LOADING)
    tools: tuple[tuple[str, str], ...] = ()
    statistics: str = "pooled"

    def tool(self, metric: str) -> str:
        """The reference tool a metric's number reproduces."""
        return dict(self.tools)[metric]

    def to_dict(self) -> dict[str, Any]:
        """What a report records: the name, the settings, the resampler and each metric's tool."""
        return {
            "name": self.name, "summary": self.summary, "mel": self.mel, "stft": self.stft,
            "isc_splits": self.isc_splits, "isc_seed": self.isc_seed, "kl_eps": self.kl_eps,
            "loading": asdict(self.loading), "classifier_loading": asdict(self.classifier_loading),
            "resampler": RESAMPLERS[self.loading.resampler], "tools": dict(self.tools),
            "statistics": self.statistics,
        }

    def frechet_distance(self, files_a, files_b) -> float:
        """FAD between two sets given each file's embeddings, fitted as :attr:`statistics` says.

        Args:
            files_a: One (n_i, D) tensor per file (or window) of one set.
            files_b: The same for the other set.
        """
        if self.statistics == "fadtk":
            return fadtk_distance(files_a, files_b)
        return frechet_distance(torch.cat(list(files_a)), torch.cat(list(files_b)))


_GENERATION_TOOLS = (
    ("fad", f"{AUDIOLDM_EVAL} metrics/fad.py FrechetAudioDistance (VGGish frames without the final ReLU, "
            "no PCA, input resampled with torchaudio as audioldm_eval does; not the resampy resampling of "
            "torchvggish/frechet-audio-distance nor fadtk's); Fréchet distance by aar's eigenvalue form"),
    ("inception_score", f"{AUDIOLDM_EVAL} metrics/isc.py calculate_isc (softmax of the logits, 10 splits, "
                        "shuffle seed 2020)"),
    ("kl", f"{AUDIOLDM_EVAL} metrics/kl.py calculate_kl, kullback_leibler_divergence_softmax"),
    ("kl_sigmoid", f"{AUDIOLDM_EVAL} metrics/kl.py calculate_kl, kullback_leibler_divergence_sigmoid"),
    ("si_sdr", TORCHMETRICS),
)
_OFFICIAL_MEL = ("mel_distance", f"{OFFICIAL} losses.py total_loss l_f (model/audio_to_mel.py Audio2Mel)")
_AURALOSS_STFT = ("stft_distance", f"{AURALOSS} MultiResolutionSTFTLoss() defaults")

#: The protocols, by name.
PROTOCOLS: dict[str, Protocol] = {
    "paper": Protocol(
        name="paper",
        summary="the AAR paper's metrics as closely as its sources allow: the official repository's mel "
                "loss, auraloss's MR-STFT, audioldm_eval's FAD, ISc and KL",
        mel="official", stft="auraloss", tools=(_OFFICIAL_MEL, _AURALOSS_STFT) + _GENERATION_TOOLS,
    ),
    "audioldm": Protocol(
        name="audioldm",
        summary="FAD, ISc and KL as audioldm_eval computes them; mel and STFT distances as in 'paper' "
                "(audioldm_eval defines neither)",
        mel="official", stft="auraloss", tools=(_OFFICIAL_MEL, _AURALOSS_STFT) + _GENERATION_TOOLS,
    ),
    "torchvggish": Protocol(
        name="torchvggish",
        summary="FAD as torchvggish and frechet-audio-distance compute it (channels averaged, resampy "
                "kaiser_best to 16 kHz, VGGish frames); the rest as in 'paper'",
        mel="official", stft="auraloss", loading=TORCHVGGISH_LOADING,
        tools=(_OFFICIAL_MEL, _AURALOSS_STFT, ("fad", f"{TORCHVGGISH} VGGish.forward(waveform, sr) with its "
               "resampy preprocessing, without the final ReLU, no PCA; Fréchet distance by aar's eigenvalue "
               "form (frechet-audio-distance and pytorch-fid use scipy's sqrtm)"))
        + _GENERATION_TOOLS[1:],
    ),
    "dac": Protocol(
        name="dac",
        summary="DAC's configured mel distance; the rest as in 'paper'",
        mel="dac", stft="auraloss",
        tools=(("mel_distance", f"{DAC} MelSpectrogramLoss as conf/final/24khz.yml sets it"), _AURALOSS_STFT)
        + _GENERATION_TOOLS,
    ),
    "fadtk": Protocol(
        name="fadtk",
        summary="FAD as fadtk computes it with its vggish model (its Kaiser resampling to 16 kHz, 16-bit "
                "write and read, 1-s padding, float16 frames merged per file); the rest as in 'paper'",
        mel="official", stft="auraloss", loading=FADTK_LOADING, statistics="fadtk",
        tools=(_OFFICIAL_MEL, _AURALOSS_STFT, ("fad", f"{FADTK} `fadtk vggish A B`: FrechetAudioDistance."
               "load_audio (channels averaged, torchaudio Resample sinc_interp_kaiser width 64, 16-bit PCM "
               "round trip), VGGishModel (torchvggish, no PCA, last ReLU removed, padded to 1 s, float16 "
               "frames), calculate_embd_statistics_online; Fréchet distance by aar's eigenvalue form"))
        + _GENERATION_TOOLS[1:],
    ),
}
#: The protocol used when none is named.
DEFAULT_PROTOCOL = "paper"


def get_protocol(protocol: str | Protocol | None = None) -> Protocol:
    """A protocol by name (None: :data:`DEFAULT_PROTOCOL`), or the one given.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if isinstance(protocol, Protocol):
        return protocol
    name = DEFAULT_PROTOCOL if protocol is None else protocol
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
