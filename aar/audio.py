"""Audio in and out: validation, integer PCM, mono mixdown, resampling, windows, and file I/O.

Legend: B batch, C channels, T samples, W windows.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
from einops import rearrange

from ._files import atomic_path

#: Full-scale values of the integer PCM types that are converted to float in [-1, 1).
_PCM_SCALE = {torch.int16: 32768.0, torch.int32: 2147483648.0}
#: File formats written by ``write_audio`` (soundfile names), by extension.
AUDIO_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


def as_audio_batch(wav, name: str = "wav") -> torch.Tensor:
    """Turn user audio into a float tensor shaped (B, C, T).

    Args:
        wav: A tensor or numpy array shaped (T,), (C, T) or (B, C, T). Float audio is taken as is;
            int16 and int32 PCM are scaled by their full-scale value to [-1, 1).
        name: Argument name for error messages.

    Returns:
        A floating-point tensor (B, C, T); float64 input is converted to float32.

    Raises:
        TypeError: not a tensor/array, or an unsupported dtype.
        ValueError: wrong rank, no samples or channels, or NaN/Inf values.
    """
    if isinstance(wav, np.ndarray):
        wav = torch.from_numpy(np.ascontiguousarray(wav))
    if not isinstance(wav, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(wav).__name__}")
    if wav.dtype in _PCM_SCALE:
        wav = wav.to(torch.float32) / _PCM_SCALE[wav.dtype]
    elif not wav.is_floating_point():
        raise TypeError(
            f"{name} has dtype {wav.dtype}; allowed: floating point, or int16/int32 PCM"
        )
    elif wav.dtype == torch.float64:
        wav = wav.to(torch.float32)
    if wav.ndim not in (1, 2, 3):
        raise ValueError(
            f"{name} must be shaped (T,), (C, T) or (B, C, T), got {wav.ndim} dims {tuple(wav.shape)}"
        )
    wav = wav.reshape((1,) * (3 - wav.ndim) + tuple(wav.shape))
    if wav.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(wav.shape)}; need at least 1 sample")
    if not torch.isfinite(wav).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return wav


def check_sample_rate(sample_rate, name: str = "sample_rate") -> int:
    """Validate a sample rate: a positive integer number of Hz."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer)):
        raise TypeError(f"{name} must be a positive integer (Hz), got {sample_rate!r}")
    if not 0 < sample_rate < float("inf") or sample_rate != int(sample_rate):  # NaN fails the first
        raise ValueError(f"{name} must be a positive integer (Hz), got {sample_rate!r}")
    return int(sample_rate)


def resampled_length(length: int, orig: int, new: int) -> int:
    """Samples after resampling ``length`` samples from ``orig`` to ``new`` Hz: ceil(T * new / orig)."""
    return -(-length * new // orig)


def to_mono(wav_BCT: torch.Tensor) -> torch.Tensor:
    """Average channels: (B, C, T) -> (B, 1, T)."""
    return wav_BCT if wav_BCT.shape[1] == 1 else wav_BCT.mean(dim=1, keepdim=True)


def resample(wav: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (torchaudio's sinc interpolation)."""
    if orig == new:
        return wav
    out = AF.resample(wav, orig, new)
    return out[..., : resampled_length(wav.shape[-1], orig, new)]


def split_windows(wav_B1T: torch.Tensor, window: int) -> torch.Tensor:
    """Cut into consecutive windows, zero-padding the last: (B, 1, T) -> (B * W, 1, window).

    Windows are window-major within each item: row ``b * W + w`` is window ``w`` of item ``b``.
    """
    B, _, T = wav_B1T.shape
    W = -(-T // window)
    padded = torch.nn.functional.pad(wav_B1T, (0, W * window - T))
    return rearrange(padded, "b c (w t) -> (b w) c t", w=W)


def read_audio(path: str | os.PathLike) -> tuple[torch.Tensor, int]:
    """Read an audio file with soundfile.

    Returns:
        ``(wav, sample_rate)`` with ``wav`` float32 shaped (C, T).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file cannot be decoded, or holds no samples.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise ValueError(f"cannot read audio file {path}: {err}") from None
    if data.shape[0] == 0:
        raise ValueError(f"audio file {path} holds no samples")
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(sr)


def write_audio(path: str | os.PathLike, wav: torch.Tensor, sample_rate: int) -> Path:
    """Write (C, T) or (T,) float audio atomically; the format follows the extension.

    Args:
        path: Output file: ``.wav`` (float32), ``.flac`` or ``.ogg``.
        wav: Audio in [-1, 1].
        sample_rate: Rate in Hz.

    Returns:
        The written path.
    """
    import soundfile as sf

    path = Path(path)
    fmt = AUDIO_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot write {path.name!r}: allowed extensions are {sorted(AUDIO_FORMATS)}"
        )
    data = wav.detach().to("cpu", torch.float32)
    data = data.reshape(1, -1) if data.ndim == 1 else data
    if data.ndim != 2:
        raise ValueError(f"audio to write must be (C, T) or (T,), got shape {tuple(wav.shape)}")
    subtype = "FLOAT" if fmt == "WAV" else None
    with atomic_path(path) as tmp:
        sf.write(str(tmp), data.T.numpy(), sample_rate, format=fmt, subtype=subtype)
    return path
