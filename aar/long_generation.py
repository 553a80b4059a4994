"""Long generation: any number of seconds as a chain of one-second windows joined by inpainting.

Legend: B batch, N samples per window (24000), O overlap samples, T output samples.

Window 0 is ordinary generation. Window w >= 1 starts ``w * hop`` samples in (``hop = N - O``) and
shares its first O samples with the end of window w - 1. Those O samples of window w - 1's decoded
audio are placed at the start of an otherwise silent window and encoded; the tokens of window w whose
span lies inside them are forced to those tokens (see :mod:`aar.editing`), and the rest is sampled.
Only the new N - O samples are appended; over the overlap the two windows are crossfaded with a
raised-cosine ramp. Re-encoding the decoded audio, rather than reusing window w - 1's tokens, is
needed because the token grids of the two windows do not line up: a shift of ``hop`` samples is a
whole number of tokens at almost no scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from numbers import Real
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .codes import AudioCodes
from .editing import ForcedTokens, token_mask
from .next_scale import ScaleProgress

if TYPE_CHECKING:
    from .window_generator import WindowGenerator

#: Seconds each window of a long generation shares with the previous one, unless told otherwise.
DEFAULT_OVERLAP = 0.25


def fade_in(length: int, device: torch.device | str | None = None) -> Tensor:
    """Raised-cosine ramp (length,) from ~0 to ~1; ``fade_in(n) + fade_in(n).flip(0)`` is all ones."""
    t = (torch.arange(length, device=device, dtype=torch.float64) + 0.5) / length
    return (0.5 - 0.5 * torch.cos(math.pi * t)).float()


@dataclass(frozen=True)
class WindowLayout:
    """Where the windows of a long generation lie, in samples.

    Attributes:
        length: Output samples T, ``round(seconds * rate)``.
        window: Samples per window N.
        overlap: Samples each window shares with the previous one, ``round(overlap_s * rate)``.
        num_windows: Windows generated; window w starts at ``w * hop``.
    """

    length: int
    window: int
    overlap: int
    num_windows: int

    @property
    def hop(self) -> int:
        """New samples each window after the first adds."""
        return self.window - self.overlap

    @classmethod
    def plan(cls, seconds, overlap, sample_rate: int, window: int) -> WindowLayout:
        """Validate ``seconds`` (> 0) and ``overlap`` (in [0, window)), both in seconds."""
        limit = window / sample_rate
        for name, value in (("seconds", seconds), ("overlap", overlap)):
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                raise TypeError(f"{name} must be a finite number of seconds, got {value!r}")
        length, overlap_n = round(seconds * sample_rate), round(overlap * sample_rate)
        if seconds <= 0 or length < 1:
            raise ValueError(f"seconds must be > 0 (at least one sample), got {seconds}")
        if not 0 <= overlap < limit or overlap_n >= window:
            raise ValueError(f"overlap must lie in [0, {limit:g}) seconds (shorter than a window), "
                             f"got {overlap}")
        hop = window - overlap_n
        return cls(length, window, overlap_n, 1 + max(0, -(-(length - window) // hop)))


@dataclass(frozen=True, eq=False)
class LongGeneration:
    """The result of :func:`generate_long`.

    Attributes:
        audio: Float32 (B, 1, T) at 24 kHz, the windows stitched and crossfaded.
        windows: Codes of each window (``AudioCodes`` with W = 1), in order.
        forced: The plan of each window: None for the first (and for all when ``overlap`` is 0).
        layout: Where the windows lie.
    """

    audio: Tensor
    windows: tuple[AudioCodes, ...]
    forced: tuple[ForcedTokens | None, ...]
    layout: WindowLayout


def generate_long(
    gen: WindowGenerator,
    clap_emb=None,
    *,
    seconds: float,
    overlap: float | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    callback: Callable[[ScaleProgress], object] | None = None,
    prompt=None,
    audio=None,
    sample_rate: int | None = None,
    **sampling,
) -> LongGeneration:
    """Generate ``seconds`` of audio as a chain of windows joined by inpainting (module docstring).

    One random generator drives every window in turn, so a seed fixes the whole output.

    Args:
        gen: An ``AARGenerator`` (anything with its ``WindowGenerator`` methods).
        clap_emb: Condition (D,) or (B, D); or give ``prompt`` or ``audio`` with ``sample_rate``.
        seconds: Output length; the output has ``round(seconds * 24000)`` samples.
        overlap: Seconds shared by neighbouring windows, in [0, 1); default ``DEFAULT_OVERLAP``.
        seed: Seed of the generator (see ``AARGenerator.generate_codes``).
        generator: Your own ``torch.Generator`` instead of ``seed``.
        progress: Show a progress bar over the windows.
        callback: Called with a ``ScaleProgress`` after every scale of every window; its ``window``
            and ``num_windows`` say which window (``codes`` are that window's scales so far).
        prompt: Text prompt(s) for the condition.
        audio: Reference audio for the condition.
        sample_rate: Rate of ``audio``.
        **sampling: ``cfg``, ``top_k``, ``top_p``, ``temperature``.

    Every argument is checked before CLAP runs or loads.

    Returns:
        A ``LongGeneration``; its ``audio`` is (B, 1, round(seconds * 24000)).
    """
    from .sampling import make_generator
    from .sampling_options import check_generation_kwargs

    refused = sorted(set(sampling) & {"prefix", "keep_scales", "forced"})
    if refused:
        raise ValueError(f"{', '.join(refused)} apply to one window; long generation (seconds=) takes none")
    check_generation_kwargs(dict(sampling, seed=seed, generator=generator, callback=callback), gen.device)
    tok = gen.tokenizer
    layout = WindowLayout.plan(seconds, DEFAULT_OVERLAP if overlap is None else overlap,
                               tok.sample_rate, tok.config.window)
    clap_BD = gen.clap_vectors(clap_emb, prompt=prompt, audio=audio, sample_rate=sample_rate)
    rng = make_generator(seed, generator, device=gen.device)
    B, N, O, hop = clap_BD.shape[0], layout.window, layout.overlap, layout.hop
    overlap_mask = token_mask(torch.arange(N).unsqueeze(0) < O, tok.config.scales)
    fade_O = fade_in(O, device=tok.device)
    out_B1T = torch.zeros(B, 1, (layout.num_windows - 1) * hop + N, device=tok.device)
    windows, plans, prev_B1N = [], [], None
    steps = range(layout.num_windows)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="generate", unit="window")
    for w in steps:
        plan = None
        if w > 0 and O > 0:
            head_B1N = torch.zeros_like(prev_B1N)
            head_B1N[..., :O] = prev_B1N[..., N - O:]
            known = tok.encode_windows(head_B1N)
            plan = ForcedTokens(tuple(m.expand(B, -1) for m in overlap_mask), tuple(known))
        codes = gen.generate_codes(clap_BD, generator=rng, forced=plan, **sampling,
                                   callback=_in_window(callback, w, layout.num_windows))
        wav_B1N = tok.decode(codes).to(out_B1T.device)
        start = w * hop
        if w > 0 and O > 0:
            mixed = out_B1T[..., start:start + O] * (1 - fade_O) + wav_B1N[..., :O] * fade_O
            out_B1T[..., start:start + O] = mixed
        out_B1T[..., start + (O if w else 0):start + N] = wav_B1N[..., (O if w else 0):]
        windows.append(codes)
        plans.append(plan)
        prev_B1N = wav_B1N
    return LongGeneration(out_B1T[..., :layout.length], tuple(windows), tuple(plans), layout)


def _in_window(callback, window: int, num_windows: int):
    """``callback`` with each ``ScaleProgress`` tagged with its window (None stays None)."""
    if callback is None:
        return None
    return lambda p: callback(replace(p, window=window, num_windows=num_windows))
