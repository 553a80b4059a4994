"""Continue a clip: new windows whose opening is the clip's last moments, joined as long generation joins.

Legend: B batch (1 here), N samples per window (24000), O context samples, T samples.

Each new window starts with the last O samples of the audio so far, placed at the start of an
otherwise silent window and encoded; the tokens whose span lies inside those O samples are forced
(``aar.generation.editing.ForcedTokens.from_known``), the rest is sampled, and the window's new
N - O samples are appended. This is the step ``aar.generation.long_generation`` takes between its
windows, with the clip standing in for window 0. The clip itself is kept unchanged: only a short
crossfade (``CROSSFADE`` seconds at most) joins its last samples to the regenerated copy of them,
so the seam does not click.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from aar.generation.editing import ForcedTokens
from aar.generation.long_generation import fade_in

#: Seconds of the join between the clip and the continuation that are crossfaded.
CROSSFADE = 0.05


def continue_audio(gen, wav_1T: torch.Tensor, clap_1D: torch.Tensor, *, add_seconds: float, context: float,
                   rng: torch.Generator, callback: Callable | None = None, **sampling) -> torch.Tensor:
    """``wav_1T`` followed by ``add_seconds`` of generated audio that continues it.

    Args:
        gen: An ``AARGenerator``.
        wav_1T: Mono audio (1, T) at the generator's rate; T >= the context.
        clap_1D: The condition (1, D).
        add_seconds: Seconds to add, > 0.
        context: Seconds of the clip's end each new window starts from, in (0, 1).
        rng: The random stream of every window in turn.
        callback: Receives each window's ``ScaleProgress``, tagged with ``window`` and ``num_windows``.
        **sampling: ``cfg``, ``top_k``, ``top_p``, ``temperature``.

    Returns:
        Float32 (1, T + round(add_seconds * rate)).
    """
    tok = gen.tokenizer
    rate, N = tok.sample_rate, tok.config.window
    O = round(context * rate)
    if not 0 < O < N:
        raise ValueError(f"context must lie in (0, {N / rate:g}) seconds, got {context}")
    if wav_1T.shape[-1] < O:
        raise ValueError(f"the clip ({wav_1T.shape[-1] / rate:.2f} s) is shorter than the context "
                         f"({context:g} s)")
    add = round(add_seconds * rate)
    if add < 1:
        raise ValueError(f"add_seconds must be > 0, got {add_seconds}")
    hop = N - O
    num_windows = math.ceil(add / hop)
    known_1N = torch.arange(N).unsqueeze(0) < O
    fade = min(O, round(CROSSFADE * rate))
    out_1T = wav_1T.to(tok.device, torch.float32)
    T = out_1T.shape[-1]
    for w in range(num_windows):
        head_11N = torch.zeros(1, 1, N, device=tok.device)
        head_11N[..., :O] = out_1T[..., -O:]
        plan = ForcedTokens.from_known(tok.encode_windows(head_11N), known_1N)
        tagged = None if callback is None else _tagged(callback, w, num_windows)
        codes = gen.generate_codes(clap_1D, generator=rng, forced=plan, callback=tagged, **sampling)
        new_1N = tok.decode(codes)[0].to(out_1T.device)
        ramp = fade_in(fade, device=out_1T.device)
        joined = out_1T[..., -fade:] * (1 - ramp) + new_1N[..., O - fade:O] * ramp
        out_1T = torch.cat([out_1T[..., :-fade], joined, new_1N[..., O:]], dim=-1)
    return out_1T[..., :T + add]


def _tagged(callback, window: int, num_windows: int):
    from dataclasses import replace

    return lambda p: callback(replace(p, window=window, num_windows=num_windows))
