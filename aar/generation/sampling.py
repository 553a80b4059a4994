"""Pure sampling functions for next-scale generation: guidance, filtering and the draw.

Legend: B batch, l tokens of one scale, V codebook size, S scales.

Each function takes its randomness, if any, from an explicit ``torch.Generator``. Applied in the
order ``cfg_mix`` -> ``apply_temperature`` -> ``top_k_filter`` -> ``top_p_filter`` -> ``draw``
(``sample`` does the last four), they consume the generator exactly as the official code does, so a
seed reproduces the official tokens on the same device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real

import torch
from torch import Tensor


def guidance_scale(cfg: float, si: int, num_scales: int) -> float:
    """Guidance weight of scale ``si``: the official linear ramp ``cfg * si / (S - 1)``.

    Guidance grows from 0 at the first scale to ``cfg`` at the last. A negative ``cfg`` pushes
    away from the condition (anti-guidance). With a single scale the weight is 0.

    Args:
        cfg: Guidance strength at the last scale.
        si: Scale index, 0..S-1.
        num_scales: Number of scales S.

    Returns:
        The weight ``t`` for ``cfg_mix``.

    Example:
        >>> guidance_scale(4.0, 15, 16)
        4.0
    """
    return cfg * si / max(num_scales - 1, 1)


def cfg_mix(logits_cond: Tensor, logits_uncond: Tensor, t: float) -> Tensor:
    """Classifier-free guidance: ``(1 + t) * logits_cond - t * logits_uncond``.

    Args:
        logits_cond: Conditional logits, (B, l, V).
        logits_uncond: Unconditional logits, same shape.
        t: Guidance weight from ``guidance_scale``; 0 returns the conditional logits.

    Returns:
        Guided logits, (B, l, V).
    """
    return (1 + t) * logits_cond - t * logits_uncond


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """Divide the logits by ``temperature`` (> 0); 1.0 returns them unchanged."""
    return logits if temperature == 1.0 else logits / temperature


def top_k_filter(logits_BlV: Tensor, top_k: int | None) -> Tensor:
    """Set every logit strictly below the k-th largest of its row to ``-inf``.

    Ties with the k-th largest value survive, so more than k tokens may remain.

    Args:
        logits_BlV: Logits, (..., V).
        top_k: Tokens to keep; None, 0 or a value at or above V keeps every token.

    Returns:
        A filtered copy, same shape.

    Example:
        >>> top_k_filter(torch.tensor([1.0, 3.0, 3.0, 2.0]), 1)
        tensor([-inf, 3., 3., -inf])
    """
    if not top_k or top_k >= logits_BlV.shape[-1]:
        return logits_BlV
    kth_Bl1 = logits_BlV.topk(top_k, dim=-1).values[..., -1:]
    return logits_BlV.masked_fill(logits_BlV < kth_Bl1, -math.inf)


def top_p_filter(logits_BlV: Tensor, top_p: float | None) -> Tensor:
    """Nucleus filter: drop the least likely tokens whose total probability is at most ``1 - top_p``.

    Tokens are sorted ascending; those whose cumulative probability is ``<= 1 - top_p`` are set to
    ``-inf``. The most likely token always survives.

    Args:
        logits_BlV: Logits, (..., V).
        top_p: Probability mass to keep, in (0, 1]; None or 1.0 keeps every token.

    Returns:
        A filtered copy, same shape.
    """
    if top_p is None or top_p >= 1.0:
        return logits_BlV
    sorted_BlV, order_BlV = logits_BlV.sort(dim=-1, descending=False)
    drop_sorted = sorted_BlV.softmax(dim=-1).cumsum(dim=-1) <= 1 - top_p
    drop_sorted[..., -1] = False
    drop = drop_sorted.scatter(-1, order_BlV, drop_sorted)  # back to vocabulary order
    return logits_BlV.masked_fill(drop, -math.inf)


def draw(logits_BlV: Tensor, generator: torch.Generator | Sequence[torch.Generator] | None = None) -> Tensor:
    """Draw one token per position: one ``torch.multinomial`` call over the batch, or one per row.

    Args:
        logits_BlV: Logits, (B, l, V).
        generator: Source of randomness; None uses torch's global generator. A sequence of B
            generators draws row b from the b-th alone, as a batch of one row would.

    Returns:
        idx_Bl: Token indices, (B, l), int64.

    Raises:
        ValueError: a sequence of generators whose length is not B.
    """
    B, l, V = logits_BlV.shape
    probs = logits_BlV.softmax(dim=-1)
    if isinstance(generator, Sequence):
        check_row_generators(generator, B)
        return torch.cat([torch.multinomial(probs[b], 1, replacement=True, generator=g).view(1, l)
                          for b, g in enumerate(generator)])
    idx = torch.multinomial(probs.view(-1, V), 1, replacement=True, generator=generator)  # (B * l, 1)
    return idx.view(B, l)


def check_row_generators(generator: object, rows: int) -> None:
    """Check that per-row generators (a sequence) number ``rows``; a single generator always fits.

    Raises:
        ValueError: a sequence of another length.
    """
    if isinstance(generator, Sequence) and len(generator) != rows:
        raise ValueError(f"got {len(generator)} seeds or generators for a batch of {rows} rows; give one "
                         "per row, or a single seed for the whole batch")


def sample(
    logits_BlV: Tensor,
    *,
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Temperature, top-k, top-p, then one ``draw``: tokens (B, l) from logits (B, l, V).

    Example:
        >>> logits_BlV = torch.tensor([[[0.0, 5.0, 1.0]]])
        >>> sample(logits_BlV, top_k=1)
        tensor([[1]])
    """
    logits_BlV = apply_temperature(logits_BlV, temperature)
    logits_BlV = top_k_filter(logits_BlV, top_k)
    logits_BlV = top_p_filter(logits_BlV, top_p)
    return draw(logits_BlV, generator)


def _is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def validate_sampling(top_k: int | None, top_p: float | None, temperature: float) -> None:
    """Check the sampling knobs, raising errors that name the value received and the allowed range.

    Args:
        top_k: None or an integer >= 0; None and 0 mean off, and so does any value at or above
            the codebook size (``top_k_filter`` then keeps every token).
        top_p: None or a number in (0, 1]; None and 1.0 keep every token.
        temperature: A finite number > 0.

    Raises:
        TypeError: A knob is not a number of the right kind (booleans are refused).
        ValueError: A knob is out of range.
    """
    if top_k is not None:
        if not isinstance(top_k, Integral) or isinstance(top_k, bool):
            raise TypeError(f"top_k must be None or an int >= 0, got {top_k!r}")
        if top_k < 0:
            raise ValueError(f"top_k must be None or an int >= 0 (0 = off), got {top_k}")
    if top_p is not None:
        if not _is_real(top_p):
            raise TypeError(f"top_p must be None or a number in (0, 1], got {top_p!r}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be None (off) or lie in (0, 1], got {top_p}")
    if not _is_real(temperature):
        raise TypeError(f"temperature must be a number > 0, got {temperature!r}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")


#: ``seed=``: one seed for the batch, one per row, or None for fresh randomness.
Seed = int | Sequence[int] | None
#: ``generator=``: one random stream for the batch, one per row, or None.
RandomStreams = torch.Generator | Sequence[torch.Generator] | None


def make_generator(
    seed: Seed = None,
    generator: RandomStreams = None,
    device: torch.device | str = "cpu",
) -> torch.Generator | list[torch.Generator]:
    """The generator that sampling draws from, or one per row.

    One seed (or generator) drives a whole batch through one stream, as the official code does.
    A sequence gives each row its own stream: row b of a batch then draws exactly what a batch of one
    row with that seed draws from the same logits (``aar.generation.sampling.draw``).

    Args:
        seed: Seeds ``torch.Generator(device=device)``; the same seed on the same device gives the
            same tokens (a CUDA generator draws differently from a CPU one). A sequence of ints:
            one generator per row.
        generator: A generator to use as is, or a sequence of them, one per row.
        device: Device of the logits, where the generator must live.

    Returns:
        ``generator`` if given (a list for a sequence); else a new generator on ``device``, seeded
        with ``seed``, or from a non-deterministic seed when ``seed`` is None; a list of them for a
        sequence of seeds.

    Raises:
        ValueError: Both ``seed`` and ``generator`` were given, a seed is out of range, or a
            sequence is empty.
        TypeError: a seed is not an int (booleans and floats are refused), or a generator is not
            a ``torch.Generator``.

    Example:
        >>> g = make_generator(seed=0)
        >>> torch.rand(1, generator=g).item() == torch.rand(1, generator=make_generator(0)).item()
        True
        >>> len(make_generator(seed=[0, 1, 2]))
        3
    """
    if seed is not None and generator is not None:
        raise ValueError(
            f"pass either seed or generator, not both (got seed={seed!r} and a generator)"
        )
    for name, value in (("seed", seed), ("generator", generator)):
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
            if len(value) == 0:
                raise ValueError(f"{name} is an empty sequence; give one per row, or one for the batch")
            return [make_generator(v, None, device) if name == "seed" else make_generator(None, v, device)
                    for v in value]
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or a sequence of them, "
                            f"got {type(generator).__name__}")
        return generator
    new = torch.Generator(device=device)
    if seed is None:
        new.seed()
        return new
    if not isinstance(seed, Integral) or isinstance(seed, bool):
        raise TypeError(f"seed must be None, an int or a sequence of ints, got {seed!r} "
                        f"({type(seed).__name__})")
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"seed must lie in [-2**63, 2**64), got {seed}")
    return new.manual_seed(int(seed))
