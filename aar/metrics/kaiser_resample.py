"""Band-limited resampling as resampy's ``kaiser_best`` filter computes it, in torch (no numba).

torchvggish and frechet-audio-distance resample their input to 16 kHz with ``resampy.resample(x,
sr_orig, sr_new)`` (default filter ``kaiser_best``). The VGGish embeddings of 22.05/24/44.1-kHz
audio move by about 2 % between that resampler and torchaudio's, so FAD as those tools print it
needs this one. resampy interpolates a tabulated windowed sinc:

* the table: the right half of ``rolloff * sinc(rolloff * t)`` for t in [0, 50] zero crossings,
  8192 entries per crossing, tapered by the right half of a symmetric Kaiser window
  (beta 12.9846), rolloff 0.9173 of Nyquist (resampy's published ``kaiser_best`` parameters);
* output sample m sits at input time ``m * sr_orig / sr_new``; its value is the sum over the input
  samples of both wings of the filter, read from the table at the fractional offset with linear
  interpolation between entries; when downsampling, the filter is stretched (and scaled) by the
  rate ratio;
* the output has ``int(T * sr_new / sr_orig)`` samples.

The sums are taken in float64 (resampy accumulates in the input's dtype), so results agree with
resampy's to float32 round-off.

Legend: T input samples, M output samples, K filter taps per wing.
"""

from __future__ import annotations

import functools

import torch

#: resampy's ``kaiser_best``: zero crossings, table entries per crossing, Kaiser beta, roll-off.
ZEROS = 50
PER_CROSSING = 2**13
BETA = 12.9846
ROLLOFF = 0.9173473712608761
#: Output samples computed per block (bounds the (M, K) index tables in memory).
BLOCK = 8192


@functools.lru_cache(maxsize=1)
def half_window() -> torch.Tensor:
    """The right wing of the interpolation filter: (ZEROS * PER_CROSSING + 1,) float64."""
    n = ZEROS * PER_CROSSING
    sinc = ROLLOFF * torch.sinc(ROLLOFF * torch.linspace(0, ZEROS, n + 1, dtype=torch.float64))
    taper = torch.kaiser_window(2 * n + 1, periodic=False, beta=BETA, dtype=torch.float64)[n:]
    return taper * sinc


def _wing(x_BT: torch.Tensor, start: torch.Tensor, step_sign: int, offset: torch.Tensor,
          eta: torch.Tensor, count: torch.Tensor, window: torch.Tensor, delta: torch.Tensor,
          index_step: int) -> torch.Tensor:
    """One wing: the sum over i < count of (window + eta delta)[offset + i step] x[start + sign i]."""
    taps = int(count.max()) if count.numel() else 0
    if taps <= 0:
        return x_BT.new_zeros(x_BT.shape[0], start.shape[0])
    i_K = torch.arange(taps)
    valid_MK = i_K[None] < count[:, None]
    table_MK = (offset[:, None] + i_K[None] * index_step).clamp(max=window.shape[0] - 1)
    weight_MK = (window[table_MK] + eta[:, None] * delta[table_MK]) * valid_MK
    sample_MK = (start[:, None] + step_sign * i_K[None]).clamp(0, x_BT.shape[-1] - 1)
    return torch.einsum("bmk,mk->bm", x_BT[:, sample_MK], weight_MK)


def kaiser_resample(wav: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """Resample along the last axis as ``resampy.resample(x, orig, new)`` does (filter ``kaiser_best``).

    Args:
        wav: Audio (..., T), floating point.
        orig: Its rate in Hz.
        new: The rate wanted.

    Returns:
        (..., int(T * new / orig)) in the input's dtype; the input itself when the rates are equal.

    Raises:
        ValueError: fewer samples than give one output sample.

    Example:
        >>> t = torch.arange(22_050) / 22_050
        >>> kaiser_resample(torch.sin(2 * torch.pi * 440 * t), 22_050, 16_000).shape
        torch.Size([16000])
    """
    if orig == new:
        return wav
    T = wav.shape[-1]
    M = int(T * float(new) / float(orig))
    if M < 1:
        raise ValueError(f"{T} samples are too few to resample from {orig} to {new} Hz")
    ratio = float(new) / orig
    window = half_window() * (ratio if ratio < 1 else 1.0)
    delta = torch.diff(window, append=window[-1:])
    scale = min(1.0, ratio)
    index_step = int(scale * PER_CROSSING)
    x_BT = wav.reshape(-1, T).to(torch.float64)
    out = []
    for first in range(0, M, BLOCK):
        t_out = torch.arange(first, min(first + BLOCK, M), dtype=torch.float64) * (1.0 / ratio)
        n = t_out.floor().long()
        frac = scale * (t_out - n)
        left_index = frac * PER_CROSSING
        left_offset = left_index.long()
        right_index = (scale - frac) * PER_CROSSING
        right_offset = right_index.long()
        left_count = torch.minimum(n + 1, (window.shape[0] - left_offset) // index_step)
        right_count = torch.minimum(T - n - 1, (window.shape[0] - right_offset) // index_step)
        out.append(
            _wing(x_BT, n, -1, left_offset, left_index - left_offset, left_count, window, delta, index_step)
            + _wing(x_BT, n + 1, 1, right_offset, right_index - right_offset, right_count, window, delta,
                    index_step)
        )
    return torch.cat(out, dim=-1).reshape(*wav.shape[:-1], M).to(wav.dtype)
