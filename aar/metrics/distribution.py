"""Distribution metrics: Fréchet distance of embedding sets, Inception Score, paired KL divergence.

All three are computed in float64 whatever the input dtype, and return Python floats.

Legend: N, M set sizes, D embedding size, C classes.
"""

from __future__ import annotations

import numpy as np
import torch

#: Relative floor on class probabilities before logs (``inception_score``, ``kl_divergence``).
PROB_FLOOR = 1e-10


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
    if torch.equal(mu_a, mu_b) and torch.equal(cov_a, cov_b):
        return 0.0  # the closed form is exactly 0; the eigenvalue route would leave ~1e-15
    root_a = _psd_sqrt(cov_a)
    inner = root_a @ cov_b @ root_a
    inner = (inner + inner.T) / 2  # symmetric up to round-off; eigh reads one triangle
    trace_sqrt = torch.linalg.eigvalsh(inner).clamp(min=0).sqrt().sum()
    value = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    return max(float(value), 0.0)


def _probabilities(probs, name: str) -> torch.Tensor:
    probs = _matrix(probs, name, "(N, C)")
    if probs.shape[0] < 1 or probs.shape[1] < 2:
        raise ValueError(f"{name} must be shaped (N, C) with N >= 1 and C >= 2, got {tuple(probs.shape)}")
    if not torch.isfinite(probs).all() or (probs < 0).any():
        raise ValueError(f"{name} must hold finite non-negative class probabilities")
    sums = probs.sum(1)
    if (sums <= 0).any():
        raise ValueError(f"{name} has a row of all zeros; each row must be a distribution over classes")
    return probs / sums[:, None]


def inception_score(probs, *, splits: int = 1, seed: int | None = None) -> float:
    """Inception Score of a set of class distributions: ``exp(mean_n KL(p(y|x_n) || p(y)))``.

    ``p(y)`` is the mean of the rows. Rows are renormalised to sum to 1 (so sigmoid outputs of a
    multi-label classifier such as PANNs are read as a distribution over classes), probabilities are
    floored at 1e-10 before logs, and everything is float64. The value lies in [1, C]: 1 when every
    item gets the same distribution, C when each is sure of a different class, equally often.

    With ``splits > 1`` the rows are cut into that many contiguous parts of (nearly) equal size
    (``numpy.array_split``), each part is scored with its own marginal, and the mean of the part scores
    is returned, the form Inception-Score tools report (usually with 10 splits). ``seed`` first shuffles
    the rows with ``numpy.random.RandomState(seed).permutation``, so a run is reproducible.

    Args:
        probs: (N, C) class probabilities, one row per generated clip.
        splits: Number of parts, 1 <= splits <= N.
        seed: Shuffle the rows with this seed before splitting; None keeps their order.

    Returns:
        The score (the mean over parts).

    Raises:
        ValueError: bad ``probs`` or ``splits``.

    Example:
        >>> inception_score(torch.eye(4))  # four clips, each certain of a different class
        4.0
        >>> inception_score(torch.eye(2).repeat_interleave(2, dim=0), splits=2)  # each half is one class
        1.0
    """
    p_NC = _probabilities(probs, "probs")
    N = p_NC.shape[0]
    if isinstance(splits, bool) or not isinstance(splits, int) or not 1 <= splits <= N:
        raise ValueError(f"splits must be an integer from 1 to the number of rows ({N}), got {splits!r}")
    if seed is not None:
        p_NC = p_NC[torch.from_numpy(np.random.RandomState(seed).permutation(N))]
    scores = []
    for rows in np.array_split(np.arange(N), splits):
        part = p_NC[torch.from_numpy(rows)]
        marginal_C = part.mean(0)
        kl = (part * (part.clamp(min=PROB_FLOOR).log() - marginal_C.clamp(min=PROB_FLOOR).log())).sum(1)
        scores.append(float(kl.mean().exp()))
    return float(np.mean(scores))


def kl_divergence(probs_ref, probs_est) -> float:
    """Mean paired KL divergence ``mean_n KL(p_ref,n || p_est,n)`` in nats.

    Row n of each input must describe the same item (a generated clip and its reference, as in
    AudioLDM's paired evaluation). Rows are renormalised to sum to 1, probabilities floored at 1e-10
    before logs, float64. 0 for identical inputs; not symmetric.

    Args:
        probs_ref: (N, C) class probabilities of the references.
        probs_est: (N, C) class probabilities of the estimates, in the same order.

    Returns:
        The mean KL divergence, >= 0.

    Example:
        >>> kl_divergence(torch.tensor([[0.5, 0.5]]), torch.tensor([[0.25, 0.75]]))  # doctest: +ELLIPSIS
        0.1438...
    """
    ref_NC = _probabilities(probs_ref, "probs_ref")
    est_NC = _probabilities(probs_est, "probs_est")
    if ref_NC.shape != est_NC.shape:
        raise ValueError(
            f"probs_ref and probs_est must be paired, the same shape (N, C); got {tuple(ref_NC.shape)} "
            f"and {tuple(est_NC.shape)}"
        )
    log_ratio = ref_NC.clamp(min=PROB_FLOOR).log() - est_NC.clamp(min=PROB_FLOOR).log()
    return max(float((ref_NC * log_ratio).sum(1).mean()), 0.0)
