"""Speech-quality metrics from maintained packages, used only when those packages are installed.

* ``stoi``: short-time objective intelligibility (Taal et al., 2011) from ``pystoi``; about 0 to 1.
* ``pesq``: perceptual evaluation of speech quality (ITU-T P.862) from ``pesq``; MOS-LQO, about 1 to 4.6.
* ``si_snr``: what torchmetrics calls SI-SNR is :func:`~aar.metrics.si_sdr` (zero-mean SI-SDR); it is
  re-exported under that name and needs nothing extra.

``pip install "aar-audio[eval]"`` installs ``pystoi`` and ``pesq``. :func:`optional_metrics` lists what
is importable, so a caller can compute what it can and skip the rest; calling a function whose
package is missing raises ``aar.errors.MissingExtraError`` (an ``ImportError``) naming the extra.
Both measures were designed for speech: on music or effects they are at best a rough guide.

Legend: B batch, T samples.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import torch

from aar.audio import check_sample_rate, resample
from aar.errors import MissingExtraError, require_extra
from aar.metrics.paired import as_pair, si_sdr

logger = logging.getLogger(__name__)

si_snr = si_sdr
#: Rates PESQ accepts; other rates are resampled to 16 kHz (wide band).
PESQ_RATES = {8_000: "nb", 16_000: "wb"}


def stoi(ref, est, sample_rate: int, *, extended: bool = False) -> torch.Tensor:
    """STOI (or extended STOI) of each item, by ``pystoi``; it resamples to 10 kHz itself.

    Args:
        ref: Clean reference (B, 1, T), (B, T) or (T,).
        est: Processed audio, the same shape.
        sample_rate: Rate of both, in Hz.
        extended: Compute ESTOI instead.

    Returns:
        (B,) float64 scores.

    Raises:
        MissingExtraError: ``pystoi`` is not installed (an ``ImportError``).
    """
    pystoi = require_extra("pystoi", "eval", "the stoi metric")
    sample_rate = check_sample_rate(sample_rate)
    ref_BT, est_BT = as_pair(ref, est)
    values = [pystoi.stoi(r.double().cpu().numpy(), e.double().cpu().numpy(), sample_rate, extended=extended)
              for r, e in zip(ref_BT, est_BT)]
    return torch.tensor(values, dtype=torch.float64)


def pesq(ref, est, sample_rate: int) -> torch.Tensor:
    """PESQ of each item, by the ``pesq`` package: narrow band at 8 kHz, wide band otherwise.

    Audio at a rate other than 8 or 16 kHz is resampled to 16 kHz (torchaudio's sinc resampler).
    An item in which PESQ finds no speech (silence, or non-speech sound it cannot align) gets NaN, and
    a warning is logged; use ``torch.nanmean`` to aggregate.

    Args:
        ref: Clean reference (B, 1, T), (B, T) or (T,).
        est: Processed audio, the same shape.
        sample_rate: Rate of both, in Hz.

    Returns:
        (B,) float64 MOS-LQO scores (NaN where PESQ found no utterance).

    Raises:
        MissingExtraError: ``pesq`` is not installed (an ``ImportError``).
    """
    module = require_extra("pesq", "eval", "the pesq metric")
    sample_rate = check_sample_rate(sample_rate)
    ref_BT, est_BT = as_pair(ref, est)
    if sample_rate not in PESQ_RATES:
        ref_BT, est_BT = (resample(x, sample_rate, 16_000) for x in (ref_BT, est_BT))
        sample_rate = 16_000
    values = []
    for i, (r, e) in enumerate(zip(ref_BT, est_BT)):
        try:
            with warnings.catch_warnings():  # the package divides silence by its zero peak first
                warnings.filterwarnings("ignore", "invalid value encountered in divide", RuntimeWarning)
                values.append(module.pesq(sample_rate, r.double().cpu().numpy(), e.double().cpu().numpy(),
                                          PESQ_RATES[sample_rate]))
        except module.NoUtterancesError:
            logger.warning("PESQ found no utterance in item %d; its score is NaN", i)
            values.append(float("nan"))
    return torch.tensor(values, dtype=torch.float64)


def optional_metrics() -> dict[str, Callable[..., torch.Tensor]]:
    """The optional metrics whose packages are installed, by name: a subset of ``stoi`` and ``pesq``.

    Each takes ``(ref, est, sample_rate)`` and returns (B,) scores.
    """
    available = {}
    for name, fn, module in (("stoi", stoi, "pystoi"), ("pesq", pesq, "pesq")):
        try:
            require_extra(module, "eval", f"the {name} metric", load=False)
        except MissingExtraError:
            continue
        available[name] = fn
    return available
