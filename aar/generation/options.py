"""The sampling arguments of generation, validated in one place before any model runs.

``generate_codes`` and the modes built on it (``vary``, ``inpaint``, long generation) take the same
keyword arguments. Each mode checks them here first, so a bad knob fails in a moment, before any
audio is encoded or CLAP is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real

import torch

from aar.generation.sampling import make_generator, validate_sampling

#: Sampling defaults: what the official inference script runs.
DEFAULT_CFG, DEFAULT_TOP_K, DEFAULT_TOP_P = 4.0, 200, 0.95

#: Keyword arguments that every generation mode passes on to ``generate_codes``.
GENERATION_KEYWORDS = frozenset(
    {"cfg", "top_k", "top_p", "temperature", "seed", "generator", "progress", "callback"}
)


@dataclass(frozen=True)
class SamplingOptions:
    """The knobs that turn guided logits into tokens, checked on construction.

    Attributes:
        cfg: Guidance strength at the last scale (a finite number; negative is anti-guidance).
        top_k: Tokens kept per position; None, 0 or any value at or above the codebook size keep all.
        top_p: Probability mass kept, in (0, 1]; None or 1.0 keep all.
        temperature: Divides the guided logits; a finite number > 0.

    Raises:
        TypeError: a knob of the wrong type (booleans are refused).
        ValueError: a knob out of range.

    Example:
        >>> SamplingOptions(top_k=0).top_p
        0.95
        >>> SamplingOptions(cfg=float("nan"))
        Traceback (most recent call last):
        ...
        ValueError: cfg must be a finite number, got nan
    """

    cfg: float = DEFAULT_CFG
    top_k: int | None = DEFAULT_TOP_K
    top_p: float | None = DEFAULT_TOP_P
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.cfg, Real) or isinstance(self.cfg, bool):
            raise TypeError(f"cfg must be a finite number, got {self.cfg!r}")
        if not math.isfinite(self.cfg):
            raise ValueError(f"cfg must be a finite number, got {self.cfg!r}")
        validate_sampling(self.top_k, self.top_p, self.temperature)


def check_callback(callback) -> None:
    """Refuse a ``callback`` that cannot be called (None is fine)."""
    if callback is not None and not callable(callback):
        raise TypeError(
            f"callback must be callable as callback(progress: ScaleProgress), got {type(callback).__name__}"
        )


def check_generation_kwargs(kwargs: Mapping[str, object], device: torch.device | str = "cpu") -> None:
    """Validate what an editing or long-generation call will pass on to ``generate_codes``.

    Args:
        kwargs: Keyword arguments among ``GENERATION_KEYWORDS``.
        device: The model's device, where a seeded generator must live.

    Raises:
        TypeError: an unknown keyword, a knob of the wrong type, or a callback that is not callable.
        ValueError: a knob out of range, or both ``seed`` and ``generator``.

    Example:
        >>> check_generation_kwargs({"seed": 0, "top_k": 5})
        >>> check_generation_kwargs({"topk": 5})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: unexpected keyword argument(s) ['topk']; allowed: callback, cfg, ...
    """
    unknown = sorted(set(kwargs) - GENERATION_KEYWORDS)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {unknown}; allowed: "
                        f"{', '.join(sorted(GENERATION_KEYWORDS))}")
    knobs = {name: kwargs[name] for name in ("cfg", "top_k", "top_p", "temperature") if name in kwargs}
    SamplingOptions(**knobs)
    make_generator(kwargs.get("seed"), kwargs.get("generator"), device=device)
    check_callback(kwargs.get("callback"))
