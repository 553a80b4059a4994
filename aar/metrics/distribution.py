"""Distribution metrics: Fréchet distance of embedding sets, Inception Score, paired KL divergence.

All three are computed in float64 whatever the input dtype, and return Python floats.

Legend: N, M set sizes, D embedding size, C classes.
"""

from __future__ import annotations

import numpy as np
import torch

#: What audioldm_eval adds to the estimate's probabilities in KL.
KL_EPS = 1e-6
#: How far a row of ``inception_score``'s input may sum from 1.
SUM_TOLERANCE = 1e-3


def _matrix(value, name: str, legend: str) -> torch.Tensor:
    """``value`` as a float64 CPU matrix; ``legend`` names its axes in messages, e.g. ``"(N, D)"``.

    Raises:
        TypeError: not a tensor or array-like.
        ValueError: not two-dimensional.
    """
    if not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError):
            kind = type(value).__name__
            raise TypeError(f"{name} must be a tensor or array {legend}, got {kind}") from None
    if value.ndim != 2:
        raise ValueError(f"{name} must be shaped {legend}, got {value.ndim} dims {tuple(value.shape)}")
    return value.detach().to("cpu", torch.float64)


def _embeddings(emb, name: str) -> torch.Tensor:
    emb = _matrix(emb, name, "(N, D)")
    if emb.shape[0] < 2 or emb.shape[1] < 1:
        raise ValueError(
            f"{name} needs at least 2 rows (a covariance) and 1 column, got shape {tuple(emb.shape)}"
        )
    if not torch.isfinite(emb).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return emb


def _psd_sqrt(cov_DD: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix; round-off negatives become 0."""
    eigvals, eigvecs = torch.linalg.eigh(cov_DD)
    return (eigvecs * eigvals.clamp(min=0).sqrt()) @ eigvecs.T


def frechet_distance(emb_a, emb_b) -> float:
    """Fréchet distance between Gaussian fits of two embedding sets (the "F" of FAD and FID).

    ``|mu_a - mu_b|**2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a S_b)^(1/2))`` with unbiased covariances
    (divided by N - 1), in float64.

    The trace of the product's square root is computed without a general matrix square root:
    ``S_a S_b`` has the same eigenvalues as the symmetric positive semi-definite
    ``S_a^(1/2) S_b S_a^(1/2)``, so ``Tr((S_a S_b)^(1/2))`` is the sum of the square roots of that
    matrix's eigenvalues (``torch.linalg.eigh``). Eigenvalues that round-off makes slightly negative
    are set to 0 before the square roots, so a singular or near-singular covariance (fewer samples than
    dimensions, constant or collinear features) gives a finite real value: never NaN, never complex,
    and no identity offset is added. The result is clamped at 0 (round-off could make it -1e-12), and is
    exactly 0 when both sets have bitwise the same mean and covariance (identical sets).

    Args:
        emb_a: (N, D) embeddings, N >= 2.
        emb_b: (M, D) embeddings, M >= 2, the same D.

    Returns:
        The distance, >= 0; 0 for identical sets.

    Raises:
        TypeError: not a tensor or array.
        ValueError: not 2-D, fewer than 2 rows, different D, or NaN/Inf values.

    Example:
        >>> a = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
        >>> frechet_distance(a, a)
        0.0
        >>> round(frechet_distance(a, a + 1.0), 6)  # the means differ by 1 in each of 8 dimensions
        8.0
    """
    a_ND = _embeddings(emb_a, "emb_a")
    b_MD = _embeddings(emb_b, "emb_b")
    if a_ND.shape[1] != b_MD.shape[1]:
        raise ValueError(
            f"emb_a and emb_b must have the same embedding size, got {a_ND.shape[1]} and {b_MD.shape[1]}"
        )
    mu_a, mu_b = a_ND.mean(0), b_MD.mean(0)
    cov_a, cov_b = torch.cov(a_ND.T), torch.cov(b_MD.T)
    cov_a, cov_b = cov_a.reshape(mu_a.numel(), -1), cov_b.reshape(mu_b.numel(), -1)  # D == 1 gives 0-d
    return frechet_distance_from_statistics(mu_a, cov_a, mu_b, cov_b)


def frechet_distance_from_statistics(mu_a: torch.Tensor, cov_a: torch.Tensor, mu_b: torch.Tensor,
                                     cov_b: torch.Tensor) -> float:
    """:func:`frechet_distance` given the Gaussian fits instead of the embeddings.

    For tools that estimate the mean and covariance their own way (fadtk merges per-file statistics;
    :mod:`aar.metrics.fadtk`). The same eigenvalue form, in float64, clamped at 0.

    Args:
        mu_a: (D,) mean of one set.
        cov_a: (D, D) its covariance (symmetric positive semi-definite).
        mu_b: (D,) mean of the other set.
        cov_b: (D, D) its covariance.

    Returns:
        The distance, >= 0; exactly 0 when both means and both covariances are equal.

    Raises:
        ValueError: shapes that do not match (D,) and (D, D), or NaN/Inf values.
    """
    mu_a, mu_b, cov_a, cov_b = (torch.as_tensor(x).detach().to("cpu", torch.float64)
                                for x in (mu_a, mu_b, cov_a, cov_b))
    D = mu_a.numel()
    if mu_a.shape != (D,) or mu_b.shape != (D,) or cov_a.shape != (D, D) or cov_b.shape != (D, D):
        raise ValueError(f"expected means (D,) and covariances (D, D) with one D, got {tuple(mu_a.shape)}, "
                         f"{tuple(cov_a.shape)}, {tuple(mu_b.shape)}, {tuple(cov_b.shape)}")
    if not all(torch.isfinite(x).all() for x in (mu_a, mu_b, cov_a, cov_b)):
        raise ValueError("the statistics contain NaN or Inf values")
    if torch.equal(mu_a, mu_b) and torch.equal(cov_a, cov_b):
        return 0.0  # the closed form is exactly 0; the eigenvalue route would leave ~1e-15
    root_a = _psd_sqrt(cov_a)
    inner = root_a @ cov_b @ root_a
    inner = (inner + inner.T) / 2  # symmetric up to round-off; eigh reads one triangle
    trace_sqrt = torch.linalg.eigvalsh(inner).clamp(min=0).sqrt().sum()
    value = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    return max(float(value), 0.0)


def _probabilities(probs, name: str, distributions: bool) -> torch.Tensor:
    probs = _matrix(probs, name, "(N, C)")
    if probs.shape[0] < 1 or probs.shape[1] < 2:
        raise ValueError(f"{name} must be shaped (N, C) with N >= 1 and C >= 2, got {tuple(probs.shape)}")
    if not torch.isfinite(probs).all() or (probs < 0).any() or (probs > 1).any():
        raise ValueError(f"{name} must hold finite class probabilities in [0, 1]")
    if distributions:
        worst = float((probs.sum(1) - 1).abs().max())
        if worst > SUM_TOLERANCE:
            raise ValueError(
                f"each row of {name} must be a distribution over classes (sum 1), but a row is {worst:.3g} "
                "away: pass the softmax of the class logits (sigmoid outputs of a multi-label tagger "
                "are not a distribution)"
            )
    return probs


def inception_score_splits(probs, *, splits: int = 10, seed: int | None = 2020) -> list[float]:
    """The Inception Score of each split, as audioldm_eval's ``calculate_isc`` computes it.

    The rows are shuffled with ``numpy.random.RandomState(seed).permutation(N)`` (no shuffle when
    ``seed`` is None) and cut at ``[i * N // splits, (i + 1) * N // splits)``; each part scores
    ``exp(mean_n KL(p_n || mean of the part))`` in float64 (``0 log 0 = 0``).

    Args:
        probs: (N, C) class distributions (softmax of the class logits), one row per generated clip.
        splits: Number of parts, 1 <= splits <= N.
        seed: The shuffle's seed (audioldm_eval: 2020), or None to keep the order.

    Returns:
        ``splits`` scores, in the order of the parts.

    Raises:
        ValueError: rows that are not distributions, or a bad ``splits``.
    """
    p_NC = _probabilities(probs, "probs", distributions=True)
    N = p_NC.shape[0]
    if isinstance(splits, bool) or not isinstance(splits, int) or not 1 <= splits <= N:
        raise ValueError(f"splits must be an integer from 1 to the number of rows ({N}), got {splits!r}")
    if seed is not None:
        p_NC = p_NC[torch.from_numpy(np.random.RandomState(seed).permutation(N))]
    scores = []
    for i in range(splits):
        part = p_NC[i * N // splits : (i + 1) * N // splits]
        marginal_1C = part.mean(0, keepdim=True)
        kl = torch.special.xlogy(part, part) - torch.special.xlogy(part, marginal_1C)
        scores.append(float(kl.sum(1).mean().exp()))
    return scores


def inception_score(probs, *, splits: int = 10, seed: int | None = 2020) -> float:
    """Inception Score ``exp(mean_n KL(p(y|x_n) || p(y)))``, the mean over splits (audioldm_eval's form).

    The defaults are audioldm_eval's (``calculate_isc(..., splits=10, samples_shuffle=True,
    rng_seed=2020)``), which AudioLDM-style tables print; see :func:`inception_score_splits` for the
    shuffle and the split boundaries. ``numpy.std`` of those splits is the spread it prints beside.
    The value lies in [1, C]; it depends on the split count, so state it with the number.

    Args:
        probs: (N, C) class distributions: the softmax of a classifier's logits (rows sum to 1).
        splits: Number of parts, 1 <= splits <= N.
        seed: The shuffle's seed, or None to keep the order.

    Returns:
        The mean of the split scores.

    Example:
        >>> inception_score(torch.eye(4), splits=1)  # four clips, each certain of a different class
        4.0
        >>> halves = torch.eye(2).repeat_interleave(2, dim=0)  # two rows of class 0, two of class 1
        >>> inception_score(halves, splits=2, seed=None)  # each half is one class
        1.0
    """
    return float(np.mean(inception_score_splits(probs, splits=splits, seed=seed)))


def kl_divergence(probs_ref, probs_est, *, eps: float = KL_EPS) -> float:
    """Mean paired KL divergence ``mean_n sum_c p_ref log(p_ref / (p_est + eps))`` (audioldm_eval's form).

    Row n of each input must describe the same item (a generated clip and its reference, paired by
    file name). audioldm_eval computes it twice from the classifier's logits: on their softmax (its
    ``kullback_leibler_divergence_softmax``, rows summing to 1) and on the 527 unnormalised sigmoids
    (``kullback_leibler_divergence_sigmoid``); both are this formula, with ``eps = 1e-6`` added to the
    estimate's probabilities and ``0 log 0 = 0``. Float64. 0 for identical inputs up to the eps; not
    symmetric: the reference comes first.

    Args:
        probs_ref: (N, C) class probabilities of the references, in [0, 1].
        probs_est: (N, C) class probabilities of the estimates, in the same order.
        eps: Added to ``probs_est`` before the log.

    Returns:
        The mean over pairs of the per-pair sums over classes.

    Example:
        >>> ref, est = torch.tensor([[0.5, 0.5]]), torch.tensor([[0.25, 0.75]])
        >>> kl_divergence(ref, est, eps=0.0)  # doctest: +ELLIPSIS
        0.1438...
    """
    ref_NC = _probabilities(probs_ref, "probs_ref", distributions=False)
    est_NC = _probabilities(probs_est, "probs_est", distributions=False)
    if ref_NC.shape != est_NC.shape:
        raise ValueError(
            f"probs_ref and probs_est must be paired, the same shape (N, C); got {tuple(ref_NC.shape)} "
            f"and {tuple(est_NC.shape)}"
        )
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps < 1:
        raise ValueError(f"eps must be a number in [0, 1), got {eps!r}")
    per_pair = (torch.special.xlogy(ref_NC, ref_NC) - torch.special.xlogy(ref_NC, est_NC + eps)).sum(1)
    return float(per_pair.mean())
