"""Inpaint a time range of a clip of any length: the one-second window around it, spliced back.

Legend: N samples per window (24000), T samples of the clip.

``AARGenerator.inpaint`` regenerates the unknown part of one window. The demo picks the window
centred on the range (moved inside the clip at its ends; a clip shorter than a window is padded with
silence, which counts as unknown and is cut off again), inpaints it, and mixes the result into the
clip: the range itself comes from the new window, and ``FADE`` seconds on each side crossfade back to
the original, so everything further away is the clip unchanged.
"""

from __future__ import annotations

import math

import torch

from aar.generation.long_generation import fade_in

#: Seconds on each side of the range over which the new audio fades back into the original.
FADE = 0.02


def check_range(start, end, clip_seconds: float, window_seconds: float) -> tuple[float, float]:
    """Validate a range to regenerate: ``0 <= start < end <= clip``, shorter than one window."""
    for name, value in (("start", start), ("end", end)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if not 0 <= start < end <= clip_seconds + 1e-9:
        raise ValueError(f"the range must satisfy 0 <= start < end <= {clip_seconds:.2f} s (the clip), "
                         f"got {start:g} to {end:g}")
    if end - start >= window_seconds:
        raise ValueError(f"the range must be shorter than one window ({window_seconds:g} s), got "
                         f"{end - start:g} s")
    return float(start), float(end)


def inpaint_range(gen, wav_1T: torch.Tensor, clap_1D: torch.Tensor, *, start: float, end: float,
                  **kwargs) -> torch.Tensor:
    """``wav_1T`` (mono, the generator's rate) with ``[start, end)`` seconds regenerated, (1, T).

    Args:
        gen: An ``AARGenerator``.
        wav_1T: The clip (1, T).
        clap_1D: The condition (1, D).
        start: First second to regenerate.
        end: End of the range, in seconds; ``end - start`` is shorter than one window.
        **kwargs: Sampling arguments of ``generate_codes`` (``seed``, ``callback``, ``cfg`` ...).
    """
    rate, N = gen.sample_rate, gen.tokenizer.config.window
    T = wav_1T.shape[-1]
    start, end = check_range(start, end, T / rate, N / rate)
    a, b = round(start * rate), round(end * rate)
    w0 = min(max(0, (a + b) // 2 - N // 2), max(0, T - N))  # the window's first sample in the clip
    window_1N = torch.zeros(1, N, device=wav_1T.device)
    inside = min(N, T - w0)
    window_1N[:, :inside] = wav_1T[:, w0:w0 + inside]
    known = [pair for pair in ((0.0, (a - w0) / rate), ((b - w0) / rate, inside / rate)) if pair[1] > pair[0]]
    new_1N = gen.inpaint(window_1N, known if known else [(0.0, 0.0)], clap_1D, sample_rate=rate, **kwargs)[0]
    weight_N = torch.zeros(N, device=wav_1T.device)
    weight_N[a - w0:b - w0] = 1
    fade = round(FADE * rate)
    left = min(fade, a - w0)
    if left > 0:
        weight_N[a - w0 - left:a - w0] = fade_in(left, device=wav_1T.device)
    right = min(fade, N - (b - w0))
    if right > 0:
        weight_N[b - w0:b - w0 + right] = fade_in(right, device=wav_1T.device).flip(0)
    out_1T = wav_1T.clone()
    weight_1N = weight_N[None, :inside]
    mixed = wav_1T[:, w0:w0 + inside] * (1 - weight_1N) + new_1N[:, :inside].to(wav_1T) * weight_1N
    out_1T[:, w0:w0 + inside] = mixed
    return out_1T
