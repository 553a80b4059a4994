"""Pictures the demo page shows, as RGB arrays: spectrograms and the token grid of the 16 scales.

Legend: T samples, S scales, s_i tokens of scale i per window, W windows, H x X image height and width.
Both pictures run left to right in time and are made with torch and numpy alone (no plotting library).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: Dark blue through purple and orange to pale yellow: a perceptually ordered ramp for magnitudes.
_RAMP = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                  [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=np.float64)


def colorize(values_HX: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (H, X) -> RGB uint8 (H, X, 3) along the ramp above; out-of-range values clip."""
    v = np.clip(np.nan_to_num(values_HX, nan=0.0), 0.0, 1.0) * (len(_RAMP) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_RAMP) - 2)
    frac = (v - lo)[..., None]
    return (_RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac).round().astype(np.uint8)


def spectrogram(wav_T: torch.Tensor, sample_rate: int, *, n_fft: int = 512, height: int = 128,
                floor_db: float = -80.0) -> np.ndarray:
    """A log-magnitude spectrogram picture of mono audio, low frequencies at the bottom.

    Args:
        wav_T: Mono audio (T,).
        sample_rate: Its rate in Hz (the frequency axis runs from 0 to half of it).
        n_fft: FFT size; the hop is a quarter of it.
        height: Rows of the picture (frequency bins are averaged down to it).
        floor_db: Decibels below the loudest bin that map to the darkest colour.

    Returns:
        RGB uint8 (height, frames, 3).

    Example:
        >>> t = torch.arange(24000) / 24000
        >>> img = spectrogram(torch.sin(2 * torch.pi * 3000 * t), 24000)
        >>> img.shape, img.dtype
        ((128, 188, 3), dtype('uint8'))
        >>> 127 - int(img[:, 90].sum(-1).argmax())  # 3 kHz of 12 kHz: a quarter of 128 rows up
        32
    """
    wav_T = wav_T.detach().to("cpu", torch.float32).reshape(-1)
    if wav_T.numel() < n_fft:
        wav_T = torch.nn.functional.pad(wav_T, (0, n_fft - wav_T.numel()))
    window = torch.hann_window(n_fft)
    power_FX = torch.stft(wav_T, n_fft, hop_length=n_fft // 4, window=window, return_complex=True).abs() ** 2
    bins = power_FX.shape[0] - 1  # drop Nyquist so the bins split evenly
    power_HX = power_FX[:bins].reshape(height, bins // height, -1).mean(1) if bins % height == 0 else \
        torch.nn.functional.interpolate(power_FX[None, None, :bins], size=(height, power_FX.shape[1]),
                                        mode="area")[0, 0]
    db_HX = 10 * torch.log10(power_HX + 1e-12)
    db_HX = (db_HX - db_HX.max()).clamp(min=floor_db) / -floor_db + 1  # 0 at the floor, 1 at the top
    return colorize(db_HX.flip(0).numpy())


def token_grid(codes: Sequence[torch.Tensor], codebook_size: int, *, item: int = 0, width: int = 300,
               row_height: int = 12) -> np.ndarray:
    """The tokens of every scale as a picture: one band per scale, coarse at the top, time to the right.

    Token j of scale i fills the columns of its time span ``[j / s_i, (j + 1) / s_i)`` of its window,
    coloured by its id (``id / (V - 1)`` along the ramp); windows follow each other.

    Args:
        codes: S LongTensors (B, W, s_i), e.g. an ``AudioCodes``.
        codebook_size: V.
        item: Which batch item to draw.
        width: Columns per window.
        row_height: Rows per scale band.

    Returns:
        RGB uint8 (S * row_height, W * width, 3).

    Example:
        >>> codes = [torch.tensor([[[5]]]), torch.tensor([[[0, 9]]])]
        >>> img = token_grid(codes, 10, width=4, row_height=1)
        >>> img.shape, bool((img[1, :2] == colorize(np.zeros((1, 1)))[0, 0]).all())
        ((2, 4, 3), True)
    """
    W = codes[0].shape[1]
    bands = []
    for c in codes:
        s = c.shape[-1]
        ids_Ws = c[item].detach().cpu().numpy()
        cols = np.arange(width) * s // width  # the token under each column of a window
        row_X = ids_Ws[:, cols].reshape(W * width) / max(codebook_size - 1, 1)
        bands.append(np.repeat(row_X[None], row_height, axis=0))
    return colorize(np.concatenate(bands))
