"""Long generation: any number of seconds as a chain of one-second windows joined by inpainting.

Legend: B batch, N samples per window (24000), O overlap samples, T output samples.

Window 0 is ordinary generation. Window w >= 1 starts ``w * hop`` samples in (``hop = N - O``) and
shares its first O samples with the end of window w - 1. Those O samples of window w - 1's decoded
audio are placed at the start of an otherwise silent window and encoded; the tokens of window w whose
span lies inside them are forced to those tokens (see :mod:`aar.generation.editing`), and the rest is sampled.
Only the new N - O samples are appended; over the overlap the two windows are crossfaded with a
raised-cosine ramp. Re-encoding the decoded audio, rather than reusing window w - 1's tokens, is
needed because the token grids of the two windows do not line up: a shift of ``hop`` samples is a
whole number of tokens at almost no scale.

Rows are independent requests: the tokenizer decodes and encodes them one at a time (its
convolutions' sums depend on the batch size), and with one seed per row (``seed=[...]``) each row of
a batch is exactly what a call with that row alone returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from numbers import Real
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from aar.codes import AudioCodes
from aar.generation.editing import ForcedTokens, token_mask
from aar.generation.editing import inpaint as editing_inpaint
from aar.generation.next_scale import ScaleProgress

if TYPE_CHECKING:
    from aar.generation.window import WindowGenerator

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
        length: Output samples T, ``round(seconds * rate)`` (plus the clip's, for a continuation).
        window: Samples per window N.
        overlap: Samples each window shares with the previous one, ``round(overlap_s * rate)``.
        num_windows: Windows generated; window w starts at ``offset + w * hop``.
        offset: Where the first generated window starts: 0, or for a continuation of a clip of P
            samples ``P - overlap`` (it shares its first ``overlap`` samples with the clip's end).
    """

    length: int
    window: int
    overlap: int
    num_windows: int
    offset: int = 0

    @property
    def hop(self) -> int:
        """New samples each window after the first adds."""
        return self.window - self.overlap

    @classmethod
    def plan(cls, seconds, overlap, sample_rate: int, window: int, prefix: int = 0) -> WindowLayout:
        """Validate ``seconds`` (> 0) and ``overlap`` (in [0, window)), both in seconds.

        ``prefix`` is the length of a clip being continued, in samples (0: none); it must hold the
        overlap, which is taken from its end.
        """
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
        if prefix and prefix < overlap_n:
            raise ValueError(f"the clip to continue lasts {prefix / sample_rate:g} s, less than the "
                             f"overlap of {overlap:g} s taken from its end: pass a smaller overlap=")
        hop = window - overlap_n
        if not prefix:
            return cls(length, window, overlap_n, 1 + max(0, -(-(length - window) // hop)))
        count = 1 + max(0, -(-(length + overlap_n - window) // hop))
        return cls(prefix + length, window, overlap_n, count, offset=prefix - overlap_n)


@dataclass(frozen=True, eq=False)
class LongGeneration:
    """The result of :func:`generate_long` and :func:`continue_long`.

    Attributes:
        audio: Float32 (B, 1, T) at 24 kHz, the windows stitched and crossfaded (after the clip, for
            a continuation).
        windows: Codes of each generated window (``AudioCodes`` with W = 1), in order.
        forced: The plan of each window: None where nothing was forced (the first window of
            :func:`generate_long`, and every window when ``overlap`` is 0).
        layout: Where the windows lie.
    """

    audio: Tensor
    windows: tuple[AudioCodes, ...]
    forced: tuple[ForcedTokens | None, ...]
    layout: WindowLayout


def _prepare(gen: WindowGenerator, sampling: dict, seed, generator, callback):
    """Check the sampling arguments (before CLAP or any encoding) and make the random generator."""
    from aar.generation.options import check_generation_kwargs

    refused = sorted(set(sampling) & {"prefix", "keep_scales", "forced"})
    if refused:
        raise ValueError(f"{', '.join(refused)} apply to one window; long generation (seconds=) takes none")
    check_generation_kwargs(dict(sampling, seed=seed, generator=generator, callback=callback), gen.device)


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
    from aar.generation.sampling import make_generator

    _prepare(gen, sampling, seed, generator, callback)
    tok = gen.tokenizer
    layout = WindowLayout.plan(seconds, DEFAULT_OVERLAP if overlap is None else overlap,
                               tok.sample_rate, tok.config.window)
    clap_BD = gen.clap_vectors(clap_emb, prompt=prompt, audio=audio, sample_rate=sample_rate)
    rng = make_generator(seed, generator, device=gen.device)
    out_B1T = torch.zeros(clap_BD.shape[0], 1, (layout.num_windows - 1) * layout.hop + layout.window,
                          device=tok.device)
    return _chain(gen, clap_BD, rng, layout, out_B1T, None, sampling, progress, callback)


def continue_long(
    gen: WindowGenerator,
    audio,
    sample_rate: int,
    *,
    seconds: float,
    overlap: float | None = None,
    clap_emb=None,
    prompt=None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    callback: Callable[[ScaleProgress], object] | None = None,
    **sampling,
) -> LongGeneration:
    """Continue a clip by ``seconds``: windows chained as in :func:`generate_long`, the first one
    sharing its first ``overlap`` seconds with the end of the clip.

    The clip's last ``overlap`` seconds (mixed to mono, at 24 kHz) are encoded and their tokens forced
    in the first new window, exactly as each window of a long generation is joined to the previous
    one; the clip is kept as it is and crossfaded into the new audio over the overlap.

    Args:
        gen: An ``AARGenerator``.
        audio: The clip: (T,), (C, T) or (B, C, T) at ``sample_rate``; it must last at least
            ``overlap`` seconds.
        sample_rate: Its rate in Hz.
        seconds: New audio to add, in seconds.
        overlap: Seconds of the clip's end the first window starts from, in [0, 1); default
            ``DEFAULT_OVERLAP``. More overlap carries more of the clip into the continuation.
        clap_emb: Condition (D,) or (B, D). With neither it nor ``prompt``: the clip's own CLAP
            embedding.
        prompt: Text condition instead.
        seed, generator, progress, callback, **sampling: As for :func:`generate_long`.

    Returns:
        A ``LongGeneration``; its ``audio`` (B, 1, P + round(seconds * 24000)) starts with the clip
        (P samples at 24 kHz, mono) and goes on with the new audio.
    """
    from aar.audio import as_audio_batch, check_sample_rate, resample, to_mono
    from aar.generation.editing import broadcast_batch
    from aar.generation.sampling import make_generator

    _prepare(gen, sampling, seed, generator, callback)
    tok = gen.tokenizer
    wav_BCT = as_audio_batch(audio, "audio")
    sample_rate = check_sample_rate(sample_rate)
    clip_B1P = resample(to_mono(wav_BCT).to(tok.device), sample_rate, tok.sample_rate)
    P, N = clip_B1P.shape[-1], tok.config.window
    layout = WindowLayout.plan(seconds, DEFAULT_OVERLAP if overlap is None else overlap,
                               tok.sample_rate, N, prefix=P)
    if clap_emb is None and prompt is None:
        clap_BD = gen.clap_vectors(audio=wav_BCT, sample_rate=sample_rate)
    else:
        clap_BD = gen.clap_vectors(clap_emb, prompt=prompt)
    B = broadcast_batch(audio=clip_B1P.shape[0], condition=clap_BD.shape[0])
    clap_BD, clip_B1P = clap_BD.expand(B, -1), clip_B1P.expand(B, -1, -1)
    rng = make_generator(seed, generator, device=gen.device)
    out_B1T = torch.zeros(B, 1, layout.offset + (layout.num_windows - 1) * layout.hop + N, device=tok.device)
    out_B1T[..., :P] = clip_B1P
    tail_B1N = torch.nn.functional.pad(clip_B1P[..., -N:], (max(0, N - P), 0))  # the clip's last window
    return _chain(gen, clap_BD, rng, layout, out_B1T, tail_B1N, sampling, progress, callback)


def inpaint(gen: WindowGenerator, codes_or_audio, known, clap_emb=None, *, sample_rate: int | None = None,
            prompt=None, **kwargs):
    """``AARGenerator.inpaint``: one window through :func:`aar.generation.editing.inpaint`, longer
    audio through :func:`inpaint_long`."""
    from aar.audio import as_audio_batch, check_sample_rate, resample, resampled_length, to_mono
    from aar.generation.editing import _condition, known_samples
    from aar.generation.options import check_generation_kwargs

    tok = gen.tokenizer
    if isinstance(codes_or_audio, (AudioCodes, list, tuple)) or sample_rate is None:
        return editing_inpaint(gen, codes_or_audio, known, clap_emb, sample_rate=sample_rate, prompt=prompt,
                               **kwargs)
    sample_rate = check_sample_rate(sample_rate)
    wav_BCT = as_audio_batch(codes_or_audio, "audio")
    T = resampled_length(wav_BCT.shape[-1], sample_rate, tok.sample_rate)
    if T <= tok.config.window:
        return editing_inpaint(gen, wav_BCT, known, clap_emb, sample_rate=sample_rate, prompt=prompt,
                               **kwargs)
    known_BT = known_samples(known, T, tok.sample_rate)  # every check before any encoding or CLAP
    check_generation_kwargs(kwargs, gen.device)
    wav_B1T = resample(to_mono(wav_BCT).to(tok.device), sample_rate, tok.sample_rate)
    clap_BD = _condition(gen, clap_emb, prompt, wav_BCT, sample_rate)
    return inpaint_long(gen, wav_B1T, known_BT, clap_BD, **kwargs)


def inpaint_long(gen: WindowGenerator, wav_B1T: Tensor, known_BT: Tensor, clap_BD: Tensor, *,
                 overlap: float | None = None, seed: int | None = None,
                 generator: torch.Generator | None = None, progress: bool = False,
                 **sampling) -> Tensor:
    """Regenerate the unknown samples of a clip longer than one window, one window at a time.

    The windows walk left to right over the unknown stretches. Each starts ``overlap`` seconds before
    the first sample still to fill (or as near as the clip allows), so it sees known audio, or audio
    it filled before, on its left; its tokens that lie wholly in known (or already filled) samples are
    forced, as :func:`aar.generation.editing.inpaint` does in one window, and the rest are sampled.
    Only unknown samples are replaced: the known audio comes back as it went in (at 24 kHz, mono),
    and the seams at the edges of a stretch are not crossfaded.

    Args:
        gen: An ``AARGenerator``.
        wav_B1T: The clip at 24 kHz, mono, T > N samples (batch 1 or B).
        known_BT: Bool (B, T) or (1, T): True where a sample is kept.
        clap_BD: The condition, (B, D) or (1, D).
        overlap: Seconds of left context each window starts with; default ``DEFAULT_OVERLAP``.
        seed, generator, progress, **sampling: As for :func:`generate_long`.

    Returns:
        Float32 audio (B, 1, T) at 24 kHz.
    """
    from aar.generation.editing import broadcast_batch
    from aar.generation.sampling import make_generator

    _prepare(gen, sampling, seed, generator, None)
    tok = gen.tokenizer
    N, T = tok.config.window, wav_B1T.shape[-1]
    layout = WindowLayout.plan(1.0, DEFAULT_OVERLAP if overlap is None else overlap, tok.sample_rate, N)
    B = broadcast_batch(audio=wav_B1T.shape[0], known=known_BT.shape[0], condition=clap_BD.shape[0])
    work_B1T = wav_B1T.to(tok.device).expand(B, -1, -1).clone()
    known_BT = known_BT.to(tok.device).expand(B, -1)
    rng = make_generator(seed, generator, device=gen.device)
    todo_T = ~known_BT.all(0)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(todo_T.sum()), desc="inpaint", unit="sample", unit_scale=True)
    while bool(todo_T.any()):
        pos = int(todo_T.nonzero()[0])
        start = min(max(pos - layout.overlap, 0), T - N)
        t_N = torch.arange(start, start + N, device=tok.device)
        known_BN = known_BT[:, start:start + N] | (t_N < pos)  # filled before counts as known
        levels = encode_rows(tok, work_B1T[..., start:start + N])
        plan = ForcedTokens.from_known(levels, known_BN)
        codes = gen.generate_codes(clap_BD.expand(B, -1), forced=plan, generator=rng, **sampling)
        new_B1N = tok.decode(codes, batch_size=1).to(work_B1T.device)
        window = work_B1T[..., start:start + N]
        work_B1T[..., start:start + N] = torch.where(known_BN[:, None], window, new_B1N)
        if bar is not None:
            bar.update(int(todo_T[pos:start + N].sum()))
        todo_T[:start + N] = False
    if bar is not None:
        bar.close()
    return work_B1T


def _chain(gen, clap_BD, rng, layout: WindowLayout, out_B1T: Tensor, prev_B1N: Tensor | None,
           sampling: dict, progress: bool, callback) -> LongGeneration:
    """Generate the windows of ``layout`` into ``out_B1T``, each joined to the audio before it.

    ``prev_B1N`` is the window of audio that the first one continues (None: the first is free).
    """
    tok = gen.tokenizer
    B, N, O, hop = clap_BD.shape[0], layout.window, layout.overlap, layout.hop
    overlap_mask = token_mask(torch.arange(N).unsqueeze(0) < O, tok.config.scales)
    fade_O = fade_in(O, device=tok.device)
    windows, plans = [], []
    steps = range(layout.num_windows)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="generate", unit="window")
    for w in steps:
        plan, joined = None, prev_B1N is not None and O > 0
        if joined:
            head_B1N = torch.zeros_like(prev_B1N)
            head_B1N[..., :O] = prev_B1N[..., N - O:]
            known = encode_rows(tok, head_B1N)
            plan = ForcedTokens(tuple(m.expand(B, -1) for m in overlap_mask), tuple(known))
        codes = gen.generate_codes(clap_BD, generator=rng, forced=plan, **sampling,
                                   callback=_in_window(callback, w, layout.num_windows))
        wav_B1N = tok.decode(codes, batch_size=1).to(out_B1T.device)
        start = layout.offset + w * hop
        if joined:
            mixed = out_B1T[..., start:start + O] * (1 - fade_O) + wav_B1N[..., :O] * fade_O
            out_B1T[..., start:start + O] = mixed
        out_B1T[..., start + (O if joined else 0):start + N] = wav_B1N[..., (O if joined else 0):]
        windows.append(codes)
        plans.append(plan)
        prev_B1N = wav_B1N
    return LongGeneration(out_B1T[..., :layout.length], tuple(windows), tuple(plans), layout)


def encode_rows(tok, wav_B1N: Tensor) -> list[Tensor]:
    """The tokens of B one-window clips, S tensors (B, s_i), encoded one clip at a time (as alone)."""
    rows = [tok.encode_windows(wav_11N) for wav_11N in wav_B1N.split(1)]
    return [torch.cat(scale) for scale in zip(*rows)]


def _in_window(callback, window: int, num_windows: int):
    """``callback`` with each ``ScaleProgress`` tagged with its window (None stays None)."""
    if callback is None:
        return None
    return lambda p: callback(replace(p, window=window, num_windows=num_windows))
