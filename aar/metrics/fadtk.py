"""FAD as fadtk computes it for its ``vggish`` model (microsoft/fadtk@ec74b1f, fadtk 1.1.0).

fadtk's FAD differs from audioldm_eval's and torchvggish's in five steps, each read from its source
at that commit and checked by running it (tests/fixtures/reference/README.md):

1. ``FrechetAudioDistance.load_audio`` (``fad.py``) reads the file, averages the channels and
   resamples to 16 kHz with ``torchaudio.transforms.Resample`` at its own settings: Kaiser-windowed
   sinc, ``lowpass_filter_width=64``, ``rolloff=0.9475937167399596``, ``beta=14.769656459379492``
   (:func:`fadtk_resample`, which builds that same transform).
2. It writes the result as a 16-bit PCM WAV (``torchaudio.save(..., encoding="PCM_S",
   bits_per_sample=16)``) and ``ModelLoader.load_wav`` reads it back as ``int16 / 32768``. With
   fadtk's locked environment (torchaudio 2.7.0 saving through soundfile 0.13.1, libsndfile 1.2.2) a
   float sample x becomes ``clamp(floor(32768 x), -32768, 32767)``: a sweep of 6e5 values matched
   that rule exactly (:func:`pcm16_round_trip`).
3. ``enforce_min_len`` zero-pads a clip shorter than 1 s (``min_len=1`` for VGGish) to 16000 samples.
4. ``ModelLoader.get_embedding`` stores VGGish's frame embeddings (torchvggish, no PCA, last ReLU
   removed) as float16.
5. ``calculate_embd_statistics_online`` (``utils.py``) merges per-file statistics: each file's mean
   is numpy's float16 mean (float32 sums, rounded to float16), its scatter ``np.cov(...) * (n - 1)`` in
   float64 around the exact mean (zero for a one-frame file, for which ``np.cov`` returns a scalar),
   and the files are merged with the pairwise update ``mu += n_f / (n + n_f) * delta``, ``S += S_f +
   delta delta^T n n_f / (n + n_f)``; the covariance is ``S / (n - 1)`` (:func:`fadtk_statistics`).
   Because the per-file means are rounded, this is not the covariance of the pooled frames.

The distance itself (``calc_frechet_distance``: eigenvalues of ``cov_a @ cov_b``, real part of the
trace of their square roots) is the same quantity as aar's eigenvalue form; the two agree to
round-off (fadtk's own value changes by 1e-8 relative when its arguments are swapped).

Legend: T samples, n frames of one file, D embedding size.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torchaudio

from aar.metrics.distribution import frechet_distance_from_statistics

#: What reports name as the reference tool.
FADTK = "fadtk 1.1.0 (microsoft/fadtk@ec74b1f)"
#: fadtk's resampler settings (``fad.py`` ``load_audio``).
LOWPASS_FILTER_WIDTH = 64
ROLLOFF = 0.9475937167399596
BETA = 14.769656459379492
#: fadtk's VGGish pads clips to 1 s at 16 kHz (``VGGishModel(min_len=1)``).
MIN_SAMPLES = 16_000
#: 16-bit full scale as libsndfile writes floats and fadtk reads int16 back.
PCM16_SCALE = 32768


@functools.lru_cache(maxsize=8)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    return torchaudio.transforms.Resample(
        orig, new, lowpass_filter_width=LOWPASS_FILTER_WIDTH, rolloff=ROLLOFF,
        resampling_method="sinc_interp_kaiser", beta=BETA,
    )


def fadtk_resample(wav: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """Resample along the last axis as fadtk does: (..., T) -> (..., ceil(T * new / orig)).

    Example:
        >>> fadtk_resample(torch.zeros(24_000), 24_000, 16_000).shape
        torch.Size([16000])
    """
    return _resampler(int(orig), int(new))(wav)


def pcm16_round_trip(wav: torch.Tensor) -> torch.Tensor:
    """The 16-bit write and read fadtk puts every file through: ``clamp(floor(32768 x)) / 32768``.

    Floor (not rounding) and clipping at [-32768, 32767] are what libsndfile 1.2.2, the writer under
    fadtk's torchaudio 2.7 ``save``, does with float samples. The product is taken in float32, as
    libsndfile takes it. Returns float32.

    Example:
        >>> pcm16_round_trip(torch.tensor([0.5, 1 / 3, -1 / 3, 1.2])) * 32768
        tensor([ 16384.,  10922., -10923.,  32767.])
    """
    codes = torch.floor(wav.float() * PCM16_SCALE).clamp(-PCM16_SCALE, PCM16_SCALE - 1)
    return codes / PCM16_SCALE


def file_statistics(frames_nD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One file's share of fadtk's statistics: (float16-rounded mean (D,), scatter (D, D), n), float64.

    The frames are rounded to float16 first (what fadtk stores). The mean is summed in float32 frame
    by frame, divided in float32 and rounded to float16, as numpy's ``mean`` of a float16 array; the
    scatter ``sum (x - mean)(x - mean)^T`` is taken in float64 around the exact mean.
    """
    half_nD = torch.as_tensor(frames_nD).detach().cpu().to(torch.float16)
    n = half_nD.shape[0]
    total = half_nD[0].float()
    for row in half_nD[1:]:  # numpy reduces the outer axis row by row
        total = total + row.float()
    mean = (total / n).to(torch.float16).double()
    centred = half_nD.double() - half_nD.double().mean(0)
    return mean, centred.T @ centred, n


def fadtk_statistics(files: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and covariance (D, D), float64, of a set as fadtk merges its files' frames.

    Args:
        files: One (n_i, D) tensor of frame embeddings per file, n_i >= 1.

    Returns:
        ``(mu, cov)``; the covariance is ``S / (N - 1)`` for N frames in all (zeros when N < 2).

    Raises:
        ValueError: no files, a file without frames, or files of different D.
    """
    if not files:
        raise ValueError("fadtk_statistics needs at least one file's embeddings")
    dims = {tuple(f.shape[1:]) for f in files}
    if len(dims) != 1 or len(next(iter(dims))) != 1 or any(f.shape[0] < 1 for f in files):
        raise ValueError(f"each file must give (n, D) embeddings with n >= 1 and one D, got shapes "
                         f"{sorted({tuple(f.shape) for f in files})}")
    D = files[0].shape[1]
    mu = torch.zeros(D, dtype=torch.float64)
    S = torch.zeros(D, D, dtype=torch.float64)
    n = 0
    for frames in files:
        mean_f, scatter_f, n_f = file_statistics(frames)
        delta = mean_f - mu
        mu += n_f / (n + n_f) * delta
        S += scatter_f + delta[:, None] * delta[None, :] * n * n_f / (n + n_f)
        n += n_f
    return mu, (S / (n - 1) if n >= 2 else torch.zeros_like(S))


def fadtk_distance(files_a: Sequence[torch.Tensor], files_b: Sequence[torch.Tensor]) -> float:
    """fadtk's FAD between two sets given per-file frame embeddings: (n_i, D) tensors per set.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a = [torch.randn(3, 8, generator=g) for _ in range(40)]
        >>> fadtk_distance(a, a)
        0.0
    """
    mu_a, cov_a = fadtk_statistics(files_a)
    mu_b, cov_b = fadtk_statistics(files_b)
    return frechet_distance_from_statistics(mu_a, cov_a, mu_b, cov_b)
