"""Reconstruction metrics on paired audio: multi-scale mel distance, multi-resolution STFT distance, SI-SDR.

Each function compares a reference with an estimate of the same shape and rate and returns one value
per item, so a caller can report per-window, per-file and aggregate numbers from one call.

The spectral distances come in the forms named reference tools compute, chosen with ``definition``:

* ``mel_distance(..., definition="official")`` (the default): the frequency-domain loss of the
  official AAR repository (``losses.py``, ``model/audio_to_mel.py``): windows 2^5 ... 2^11 with hop a
  quarter window, 64 Slaney mel bands over 0 Hz ... Nyquist, signals reflect-padded by
  ``(window - hop) // 2`` on each side and framed without centring, power spectrum,
  ``log10(max(mel, 1e-5))``, L1 plus mean squared difference per scale, summed over the scales.
* ``mel_distance(..., definition="dac")``: DAC's ``MelSpectrogramLoss`` as its shipped configs set it
  (windows 32 ... 2048, hop a quarter, 5 ... 320 mel bands, ``pow=1.0``, ``clamp_eps=1e-5``,
  ``mag_weight=0``): centred STFT with reflected edges (audiotools), magnitude through the mel
  filters, ``log10(max(mel, 1e-5))``, L1 per scale, summed.
* ``stft_distance(..., definition="auraloss")`` (the default): auraloss's ``MultiResolutionSTFTLoss()``
  with its defaults: FFT sizes 1024/2048/512, hops 120/240/50, Hann windows 600/1200/240, centred
  STFT with reflected edges, magnitude ``sqrt(max(|X|**2, 1e-8))``, spectral convergence
  ``||Y - X||_F / ||Y||_F`` (normalised by the reference) plus the L1 distance of the log
  magnitudes, averaged over the three resolutions.
* ``si_sdr``: scale-invariant signal-to-distortion ratio in dB, on zero-mean signals.

A distance over a batch is computed per item (a batch of one in the reference tool); the tools'
batch means equal the mean of these values for the L1/L2 terms, not for spectral convergence, whose
norms the tools take over the whole batch. Everything is computed in float32 (float64 input stays
float64).

Legend: B batch, T samples, F frequency bins, M mel bands, N frames.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from aar.audio import check_sample_rate
from aar.errors import check_float_tensor

#: How a spectrogram's edges are handled: ``"center"`` pads ``n_fft // 2`` by reflection on each side
#: (``torch.stft(center=True)``, what audiotools and auraloss do); ``"official"`` pads
#: ``(n_fft - hop) // 2`` by reflection and frames without centring (the official repository).
PADDINGS = ("center", "official")


@dataclass(frozen=True)
class MelDistance:
    """One definition of the multi-scale log-mel distance.

    Attributes:
        tool: The reference tool whose numbers it reproduces, with the file that defines it.
        scales: ``(window, hop, mel bands)`` per scale; the FFT size equals the window.
        exponent: The spectrum fed to the mel filters, ``|X| ** exponent`` (1 magnitude, 2 power).
        log_power: ``log10(max(mel, floor) ** log_power)`` (DAC's ``pow``).
        floor: The clamp before the log.
        padding: One of :data:`PADDINGS`.
        l1: Weight of the mean absolute difference of the log-mels per scale.
        l2: Weight of their mean squared difference per scale.
    """

    tool: str
    scales: tuple[tuple[int, int, int], ...]
    exponent: float
    log_power: float
    floor: float
    padding: str
    l1: float = 1.0
    l2: float = 0.0

    @property
    def shortest(self) -> int:
        """The fewest samples every scale can pad by reflection."""
        return max(_pad_width(self.padding, w, h) for w, h, _ in self.scales) + 1


@dataclass(frozen=True)
class STFTDistance:
    """One definition of the multi-resolution STFT distance.

    Attributes:
        tool: The reference tool whose numbers it reproduces.
        resolutions: ``(FFT size, hop, window)`` per resolution.
        power_floor: Clamp of ``|X| ** 2`` before the square root.
        convergence: Weight of spectral convergence ``||Y - X||_F / ||Y||_F``.
        log_magnitude: Weight of the L1 distance of the natural-log magnitudes.
    """

    tool: str
    resolutions: tuple[tuple[int, int, int], ...]
    power_floor: float = 1e-8
    convergence: float = 1.0
    log_magnitude: float = 1.0

    @property
    def shortest(self) -> int:
        """The fewest samples every resolution can pad by reflection."""
        return max(n_fft // 2 for n_fft, _, _ in self.resolutions) + 1


#: The mel distance definitions, by name.
MEL_DEFINITIONS: dict[str, MelDistance] = {
    "official": MelDistance(
        tool="official AAR repository, losses.py total_loss l_f (model/audio_to_mel.py Audio2Mel)",
        scales=tuple((2**i, 2**i // 4, 64) for i in range(5, 12)),
        exponent=2.0, log_power=1.0, floor=1e-5, padding="official", l1=1.0, l2=1.0,
    ),
    "dac": MelDistance(
        tool="descript-audio-codec MelSpectrogramLoss, conf/final/24khz.yml",
        scales=tuple((w, w // 4, m) for w, m in zip((32, 64, 128, 256, 512, 1024, 2048),
                                                     (5, 10, 20, 40, 80, 160, 320))),
        exponent=1.0, log_power=1.0, floor=1e-5, padding="center",
    ),
}
#: The STFT distance definitions, by name.
STFT_DEFINITIONS: dict[str, STFTDistance] = {
    "auraloss": STFTDistance(
        tool="auraloss MultiResolutionSTFTLoss() defaults",
        resolutions=((1024, 120, 600), (2048, 240, 1200), (512, 50, 240)),
    ),
}


def _pad_width(padding: str, n_fft: int, hop: int) -> int:
    return n_fft // 2 if padding == "center" else (n_fft - hop) // 2


def _definition(definition, table: dict, kind: type, what: str):
    if isinstance(definition, kind):
        return definition
    if isinstance(definition, str) and definition in table:
        return table[definition]
    raise ValueError(f"{what} definition must be one of {', '.join(sorted(table))} or a {kind.__name__}, "
                     f"got {definition!r}")


def as_pair(ref, est) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a reference/estimate pair and shape both as (B, T).

    Args:
        ref: Reference audio, (B, 1, T), (B, T) or (T,), floating point; a tensor or numpy array.
        est: Estimate, the same shape as ``ref``.

    Returns:
        Both as (B, T) tensors of one floating dtype (float64 if either is float64, else float32).

    Raises:
        TypeError: not tensors or arrays, or not floating point.
        ValueError: shapes differ, more than one channel, no samples, or NaN/Inf values.
    """
    out = []
    for name, wav in (("ref", ref), ("est", est)):
        wav = check_float_tensor(name, wav)
        if wav.ndim == 3:
            if wav.shape[1] != 1:
                raise ValueError(
                    f"{name} must be mono, (B, 1, T); got {wav.shape[1]} channels in shape "
                    f"{tuple(wav.shape)} (mix down or score each channel as its own item)"
                )
            wav = wav[:, 0]
        elif wav.ndim == 1:
            wav = wav[None]
        elif wav.ndim != 2:
            raise ValueError(
                f"{name} must be shaped (B, 1, T), (B, T) or (T,), got {wav.ndim} dims {tuple(wav.shape)}"
            )
        if wav.numel() == 0:
            raise ValueError(f"{name} is empty: shape {tuple(wav.shape)}; need at least 1 sample")
        if not torch.isfinite(wav).all():
            raise ValueError(f"{name} contains NaN or Inf values")
        out.append(wav)
    ref_BT, est_BT = out
    if ref_BT.shape != est_BT.shape:
        raise ValueError(
            f"ref and est must have the same shape, got {tuple(ref_BT.shape)} and {tuple(est_BT.shape)}"
        )
    dtype = torch.float64 if torch.float64 in (ref_BT.dtype, est_BT.dtype) else torch.float32
    return ref_BT.to(dtype), est_BT.to(dtype)


def _check_length(wav_BT: torch.Tensor, shortest: int, tool: str) -> None:
    if wav_BT.shape[-1] < shortest:
        raise ValueError(f"{wav_BT.shape[-1]} samples are too few for the {tool} distance: its longest "
                         f"window pads by reflection and needs at least {shortest}")


def _spectrum(wav_BT: torch.Tensor, n_fft: int, hop: int, window: int, padding: str) -> torch.Tensor:
    """Complex STFT with a periodic Hann window: (B, T) -> (B, F, N)."""
    hann = torch.hann_window(window, dtype=wav_BT.dtype, device=wav_BT.device)
    if padding == "official":
        pad = (n_fft - hop) // 2
        wav_BT = F.pad(wav_BT[:, None], (pad, pad), mode="reflect")[:, 0]
    return torch.stft(wav_BT, n_fft, hop_length=hop, win_length=window, window=hann,
                      center=padding == "center", pad_mode="reflect", return_complex=True)


@functools.lru_cache(maxsize=64)
def _mel_filters(window: int, mels: int, sample_rate: int) -> torch.Tensor:
    """Slaney mel filters over 0 Hz ... Nyquist as librosa builds them: (window // 2 + 1, mels), float64.

    Bands narrower than an FFT bin have no weights (64 bands on a 32-point FFT, or the lowest band of
    a short window at 48 kHz); they are 0 for both signals, as in the reference tools, and
    torchaudio's warning about them is silenced.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="At least one mel filterbank has all zero values")
        return AF.melscale_fbanks(window // 2 + 1, 0.0, sample_rate / 2, mels, sample_rate,
                                  norm="slaney", mel_scale="slaney").to("cpu", torch.float64)


def mel_distance(ref, est, sample_rate: int = 24_000, *, definition: str | MelDistance = "official"
                 ) -> torch.Tensor:
    """Multi-scale log-mel distance, as a named reference tool computes it, one value per item.

    For each (window, hop, mel bands) of the definition: the STFT (padded as the tool pads it), the
    spectrum through Slaney mel filters over 0 Hz ... ``sample_rate / 2``, the floored log10, and the
    weighted mean absolute (and squared) difference over bands and frames; the scale values are
    summed. See the module docstring and :data:`MEL_DEFINITIONS`.

    Args:
        ref: Reference audio (B, 1, T), (B, T) or (T,), a tensor or numpy array.
        est: Estimate, the same shape and rate as ``ref``.
        sample_rate: Rate of both signals in Hz (places the mel bands).
        definition: ``"official"`` (the official AAR repository's mel loss, the paper's reading) or
            ``"dac"`` (DAC's configured ``MelSpectrogramLoss``), or a :class:`MelDistance`.

    Returns:
        (B,) distances, 0 for identical audio, symmetric in ``ref`` and ``est``.

    Raises:
        ValueError: bad audio, an unknown definition, or fewer samples than the longest window can
            reflect-pad (513 for ``official``, 1025 for ``dac``).

    Example:
        >>> ref = torch.randn(2, 1, 24_000)
        >>> mel_distance(ref, ref).tolist()
        [0.0, 0.0]
    """
    spec = _definition(definition, MEL_DEFINITIONS, MelDistance, "mel distance")
    sample_rate = check_sample_rate(sample_rate)
    ref_BT, est_BT = as_pair(ref, est)
    _check_length(ref_BT, spec.shortest, f"{definition!s} mel")
    total = ref_BT.new_zeros(ref_BT.shape[0])
    for window, hop, mels in spec.scales:
        fbank_FM = _mel_filters(window, mels, sample_rate).to(ref_BT)
        ref_log, est_log = (
            spec.log_power * torch.log10(torch.einsum(
                "bfn,fm->bmn", _spectrum(wav, window, hop, window, spec.padding).abs().pow(spec.exponent),
                fbank_FM).clamp(min=spec.floor))
            for wav in (ref_BT, est_BT))  # (B, M, N) each
        diff = ref_log - est_log
        if spec.l1:
            total = total + spec.l1 * diff.abs().mean(dim=(1, 2))
        if spec.l2:
            total = total + spec.l2 * diff.square().mean(dim=(1, 2))
    return total


def stft_distance(ref, est, sample_rate: int = 24_000, *, definition: str | STFTDistance = "auraloss"
                  ) -> torch.Tensor:
    """Multi-resolution STFT distance, as auraloss's ``MultiResolutionSTFTLoss()`` computes it, per item.

    For each (FFT size, hop, window) of the definition: a centred STFT with reflected edges,
    magnitudes ``sqrt(max(|X|**2, 1e-8))``, spectral convergence ``||Y - X||_F / ||Y||_F`` (Y the
    reference) plus the mean absolute difference of the natural-log magnitudes; the resolution values
    are averaged. Spectral convergence is normalised by the reference, so swapping the arguments
    changes the value: the reference comes first.

    Args:
        ref: Reference audio (B, 1, T), (B, T) or (T,), a tensor or numpy array.
        est: Estimate, the same shape and rate as ``ref``.
        sample_rate: Rate of both signals in Hz; the resolutions are in samples and do not depend on
            it. Validated, for a signature uniform with ``mel_distance``.
        definition: ``"auraloss"`` or an :class:`STFTDistance`.

    Returns:
        (B,) distances, 0 for identical audio.

    Raises:
        ValueError: bad audio, an unknown definition, or fewer than 1025 samples.

    Example:
        >>> ref = torch.randn(1, 1, 24_000)
        >>> float(stft_distance(ref, ref)[0])
        0.0
    """
    spec = _definition(definition, STFT_DEFINITIONS, STFTDistance, "STFT distance")
    check_sample_rate(sample_rate)
    ref_BT, est_BT = as_pair(ref, est)
    _check_length(ref_BT, spec.shortest, f"{definition!s} STFT")
    total = ref_BT.new_zeros(ref_BT.shape[0])
    for n_fft, hop, window in spec.resolutions:
        mag_ref, mag_est = (_spectrum(wav, n_fft, hop, window, "center").abs().square()
                            .clamp(min=spec.power_floor).sqrt() for wav in (ref_BT, est_BT))
        if spec.convergence:
            ratio = torch.linalg.vector_norm(mag_ref - mag_est, dim=(1, 2)) / torch.linalg.vector_norm(
                mag_ref, dim=(1, 2))
            total = total + spec.convergence * ratio
        if spec.log_magnitude:
            total = total + spec.log_magnitude * (mag_ref.log() - mag_est.log()).abs().mean(dim=(1, 2))
    return total / len(spec.resolutions)


def si_sdr(ref, est) -> torch.Tensor:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al., 2019), one value per item.

    Both signals are made zero-mean; with ``a = (<est, ref> + eps) / (|ref|**2 + eps)`` the target is
    ``a * ref`` and the distortion ``est - a * ref``, and
    ``SI-SDR = 10 log10((|a ref|**2 + eps) / (|est - a ref|**2 + eps))``, computed in float64 with
    ``eps`` the float32 machine epsilon (1.19e-7), as torchmetrics does (``zero_mean=True``). The eps
    keeps silent inputs finite: identical audio gives a large finite value (about
    ``10 log10(|ref|**2 / eps)``), a silent reference gives a very negative one. Higher is better;
    scaling ``est`` does not change it. SI-SNR as torchmetrics defines it is this same quantity.

    Args:
        ref: Reference audio (B, 1, T), (B, T) or (T,).
        est: Estimate, the same shape as ``ref``.

    Returns:
        (B,) values in dB, in the dtype of the inputs (float32 unless one is float64).

    Example:
        >>> ref = torch.randn(1, 1, 24_000, generator=torch.Generator().manual_seed(0))
        >>> round(float(si_sdr(ref, 0.5 * ref + 0.1 * ref.roll(7, -1))[0]), 1)
        14.0
    """
    ref_BT, est_BT = as_pair(ref, est)
    dtype = ref_BT.dtype
    eps = torch.finfo(torch.float32).eps
    ref_BT, est_BT = ref_BT.double(), est_BT.double()
    ref_BT = ref_BT - ref_BT.mean(dim=-1, keepdim=True)
    est_BT = est_BT - est_BT.mean(dim=-1, keepdim=True)
    scale = ((est_BT * ref_BT).sum(-1, keepdim=True) + eps) / (ref_BT.square().sum(-1, keepdim=True) + eps)
    target = scale * ref_BT
    ratio = (target.square().sum(-1) + eps) / ((est_BT - target).square().sum(-1) + eps)
    return (10 * torch.log10(ratio)).to(dtype)
