"""Reconstruction metrics on paired audio: multi-scale mel distance, multi-resolution STFT distance, SI-SDR.

Each function compares a reference with an estimate of the same shape and rate and returns one value
per item, so a caller can report per-window, per-file and aggregate numbers from one call.

* ``mel_distance``: the multi-scale log-mel L1 distance that DAC reports (and EnCodec trains on in a
  similar form): seven Hann windows of 32 ... 2048 samples, hop a quarter window, 5 ... 320 mel bands
  (the band count doubles with the window so each band keeps about the same number of STFT bins),
  Slaney mel filters from 0 Hz to Nyquist on the magnitude spectrum, ``log10(max(mel, 1e-5) ** 2)``,
  mean absolute difference per scale, summed over the seven scales. Short windows judge transients,
  long windows judge pitch and harmonics; no single resolution sees both.
* ``stft_distance``: the multi-resolution STFT distance of Parallel WaveGAN / auraloss: FFT sizes
  1024, 2048 and 512 with Hann windows of 600, 1200 and 240 samples and hops of 120, 240 and 50;
  magnitude ``sqrt(max(re**2 + im**2, 1e-8))``; mean absolute difference of the natural-log
  magnitudes per resolution, averaged over the three. The spectral-convergence term of the training
  loss is left out: it is normalised by the reference alone, so it is not symmetric, and a distance
  should not depend on which side is called the reference.
* ``si_sdr``: scale-invariant signal-to-distortion ratio in dB, on zero-mean signals.

Spectrograms are centred with zero padding (``torch.stft(center=True, pad_mode="constant")``), so any
length of at least one sample is accepted and the result does not depend on reflecting the edges.
Everything is computed in float32 (float64 input stays float64).

Legend: B batch, T samples, F frequency bins, M mel bands, N frames.
"""

from __future__ import annotations

import functools
import warnings

import torch
import torchaudio.functional as AF

from ..audio import check_sample_rate

#: (window, hop, mel bands) of each scale of ``mel_distance``.
MEL_SCALES: tuple[tuple[int, int, int], ...] = tuple(
    (window, window // 4, mels)
    for window, mels in zip((32, 64, 128, 256, 512, 1024, 2048), (5, 10, 20, 40, 80, 160, 320))
)
#: Floor applied to mel magnitudes before the log in ``mel_distance``.
MEL_FLOOR = 1e-5
#: (FFT size, hop, window) of each resolution of ``stft_distance``.
STFT_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
#: Floor applied to the power spectrum before the square root in ``stft_distance``.
STFT_POWER_FLOOR = 1e-8


def as_pair(ref, est) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a reference/estimate pair and shape both as (B, T).

    Args:
        ref: Reference audio, (B, 1, T), (B, T) or (T,), floating point.
        est: Estimate, the same shape as ``ref``.

    Returns:
        Both as (B, T) tensors of one floating dtype (float64 if either is float64, else float32).

    Raises:
        TypeError: not tensors, or not floating point.
        ValueError: shapes differ, more than one channel, no samples, or NaN/Inf values.
    """
    out = []
    for name, wav in (("ref", ref), ("est", est)):
        if not isinstance(wav, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(wav).__name__}")
        if not wav.is_floating_point():
            raise TypeError(f"{name} must be floating point audio, got dtype {wav.dtype}")
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
            f"ref and est must have the same shape, got {tuple(ref.shape)} and {tuple(est.shape)}"
        )
    dtype = torch.float64 if torch.float64 in (ref_BT.dtype, est_BT.dtype) else torch.float32
    return ref_BT.to(dtype), est_BT.to(dtype)


def _magnitude(wav_BT: torch.Tensor, n_fft: int, hop: int, window: int) -> torch.Tensor:
    """|STFT| with a centred Hann window, zero-padded edges: (B, T) -> (B, F, N)."""
    spec = torch.stft(
        wav_BT, n_fft, hop_length=hop, win_length=window,
        window=torch.hann_window(window, dtype=wav_BT.dtype, device=wav_BT.device),
        center=True, pad_mode="constant", return_complex=True,
    )
    return spec.abs()


@functools.lru_cache(maxsize=32)
def _mel_filters(window: int, mels: int, sample_rate: int) -> torch.Tensor:
    """Slaney mel filters over 0 Hz ... Nyquist: (window // 2 + 1, mels), float64 on the CPU.

    At 48 kHz the lowest band of the two shortest windows is narrower than an FFT bin and has no
    weights; torchaudio's warning about it is silenced because the band is then 0 for both signals
    and adds nothing to the distance, which is how DAC's implementation behaves too.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="At least one mel filterbank has all zero values")
        return AF.melscale_fbanks(window // 2 + 1, 0.0, sample_rate / 2, mels, sample_rate,
                                  norm="slaney", mel_scale="slaney").to("cpu", torch.float64)


def mel_distance(ref, est, sample_rate: int = 24_000) -> torch.Tensor:
    """Multi-scale log-mel L1 distance (DAC's definition), one value per item.

    For each (window, hop, mel bands) in ``MEL_SCALES`` = (32, 8, 5), (64, 16, 10), ...,
    (2048, 512, 320): the magnitude STFT, Slaney mel filters over 0 Hz ... ``sample_rate / 2``,
    ``log10(max(mel, 1e-5) ** 2)``, the mean absolute difference over bands and frames. The seven
    scale values are summed. (At 48 kHz one band of each of the two shortest windows is narrower than
    an FFT bin and empty: it is 0 for both signals, as in DAC's implementation.)

    Args:
        ref: Reference audio (B, 1, T), (B, T) or (T,).
        est: Estimate, the same shape and rate as ``ref``.
        sample_rate: Rate of both signals in Hz (places the mel bands).

    Returns:
        (B,) distances, 0 for identical audio, symmetric in ``ref`` and ``est``.

    Example:
        >>> ref = torch.randn(2, 1, 24_000)
        >>> mel_distance(ref, ref).tolist()
        [0.0, 0.0]
    """
    sample_rate = check_sample_rate(sample_rate)
    ref_BT, est_BT = as_pair(ref, est)
    both = torch.cat([ref_BT, est_BT])  # (2B, T): one STFT per scale for both sides
    total = both.new_zeros(ref_BT.shape[0])
    for window, hop, mels in MEL_SCALES:
        fbank_FM = _mel_filters(window, mels, sample_rate).to(both)
        mel = torch.einsum("bfn,fm->bmn", _magnitude(both, window, hop, window), fbank_FM)  # (2B, M, N)
        log_mel = 2 * torch.log10(mel.clamp(min=MEL_FLOOR))
        ref_log, est_log = log_mel.chunk(2)
        total = total + (ref_log - est_log).abs().mean(dim=(1, 2))
    return total


def stft_distance(ref, est, sample_rate: int = 24_000) -> torch.Tensor:
    """Multi-resolution STFT log-magnitude L1 distance (auraloss / Parallel WaveGAN resolutions).

    For each (FFT size, hop, window) in ``STFT_RESOLUTIONS`` = (1024, 120, 600), (2048, 240, 1200),
    (512, 50, 240): magnitude ``sqrt(max(|X|**2, 1e-8))``, the mean absolute difference of the natural
    logs over bins and frames; the three values are averaged. Spectral convergence is not included
    (it is asymmetric; see the module docstring).

    Args:
        ref: Reference audio (B, 1, T), (B, T) or (T,).
        est: Estimate, the same shape and rate as ``ref``.
        sample_rate: Rate of both signals in Hz. The resolutions are in samples and do not depend on
            it; it is validated and kept for a uniform signature with ``mel_distance``.

    Returns:
        (B,) distances, 0 for identical audio, symmetric in ``ref`` and ``est``.

    Example:
        >>> ref = torch.randn(1, 1, 24_000)
        >>> float(stft_distance(ref, ref)[0])
        0.0
    """
    check_sample_rate(sample_rate)
    ref_BT, est_BT = as_pair(ref, est)
    both = torch.cat([ref_BT, est_BT])
    total = both.new_zeros(ref_BT.shape[0])
    for n_fft, hop, window in STFT_RESOLUTIONS:
        power = _magnitude(both, n_fft, hop, window).square()
        log_mag = 0.5 * torch.log(power.clamp(min=STFT_POWER_FLOOR))  # log sqrt(power)
        ref_log, est_log = log_mag.chunk(2)
        total = total + (ref_log - est_log).abs().mean(dim=(1, 2))
    return total / len(STFT_RESOLUTIONS)


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
