"""Zero-shot editing with next-scale tokens: forced-token plans, masks, variations and inpainting.

Legend: B batch, S scales, s_i tokens of scale i, N samples per window (24000), W windows,
T samples of the output.

Known content enters generation as *forced tokens*. At step si the generator samples the whole
scale as usual, with one draw over the batch, so the random stream advances exactly as in ordinary
generation; then the forced positions are overwritten with the known tokens *before* they update
the running latent, so every later scale is predicted from the known content. Guidance only
matters for the positions left to sampling.

Token j of scale i covers the time span ``[j / s_i, (j + 1) / s_i)`` of the window, i.e. the samples
``floor(j N / s_i) .. ceil((j + 1) N / s_i) - 1``. Given a mask of known samples, a token is forced
only when *every* sample it touches is known. A token that straddles the boundary is sampled: its
code summarises its whole span, so forcing it would paint the encoded content of the unknown side
(often silence or padding) into the part to fill, while sampling it lets the model join the two
sides. Coarse tokens span most of the window and are therefore sampled unless nearly everything is
known; the forced tokens come from the fine scales, which carry the detail. The forced tokens appear
in the result unchanged; the decoded known region is close to, but not bit-equal to, the known audio,
because the sampled coarse scales, the phi convolutions and the decoder reach across the boundary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from aar.codes import AudioCodes

if TYPE_CHECKING:
    from aar.generation.window import WindowGenerator


# ------------------------------------------------------------------------------------ forced tokens
@dataclass(frozen=True, eq=False)
class ForcedTokens:
    """Which tokens of one window generation keeps, and their values.

    Attributes:
        mask: S bool tensors (B, s_i); True where the token is forced.
        tokens: S integer tensors (B, s_i); the forced values (ignored where ``mask`` is False).

    Example:
        >>> codes = [torch.tensor([[3]]), torch.tensor([[1, 2]])]
        >>> plan = ForcedTokens.from_prefix(codes, keep_scales=1)
        >>> plan.apply(1, torch.tensor([[7, 7]])), plan.apply(0, torch.tensor([[7]]))
        (tensor([[7, 7]]), tensor([[3]]))
    """

    mask: tuple[Tensor, ...]
    tokens: tuple[Tensor, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", tuple(self.mask))
        object.__setattr__(self, "tokens", tuple(self.tokens))
        if len(self.mask) != len(self.tokens) or not self.mask:
            raise ValueError(f"mask and tokens need one tensor per scale, got {len(self.mask)} and "
                             f"{len(self.tokens)}")
        for i, (m, t) in enumerate(zip(self.mask, self.tokens)):
            if m.dtype != torch.bool or t.dtype == torch.bool or t.is_floating_point():
                raise TypeError(f"scale {i}: mask must be bool and tokens integer, got {m.dtype} and "
                                f"{t.dtype}")
            if m.ndim != 2 or m.shape != t.shape or m.shape[0] != self.mask[0].shape[0]:
                raise ValueError(f"scale {i}: mask and tokens must share a (B, s_i) shape, got "
                                 f"{tuple(m.shape)} and {tuple(t.shape)}")

    @classmethod
    def from_prefix(cls, codes: Sequence[Tensor], keep_scales: int) -> ForcedTokens:
        """Force the first ``keep_scales`` scales of one window's codes (S tensors (B, s_i))."""
        mask = [torch.full(c.shape, si < keep_scales, dtype=torch.bool, device=c.device)
                for si, c in enumerate(codes)]
        return cls(tuple(mask), tuple(codes))

    @classmethod
    def from_known(cls, codes: Sequence[Tensor], known_BN: Tensor) -> ForcedTokens:
        """Force the tokens whose span lies inside the known samples.

        Args:
            codes: One window's codes, S tensors (B, s_i).
            known_BN: Known samples, bool (B, N) or (1, N).

        Returns:
            The plan, batch ``max(B, known batch)``.
        """
        mask = token_mask(known_BN.to(codes[0].device), [c.shape[-1] for c in codes])
        B = broadcast_batch(codes=codes[0].shape[0], known=known_BN.shape[0])
        return cls(tuple(m.expand(B, -1) for m in mask), tuple(c.expand(B, -1) for c in codes))

    @property
    def batch_size(self) -> int:
        return self.mask[0].shape[0]

    def num_forced(self) -> int:
        """Forced tokens, summed over the scales and the batch."""
        return sum(int(m.sum()) for m in self.mask)

    def expand(self, batch: int, device: torch.device | str | None = None) -> ForcedTokens:
        """The plan for ``batch`` items (from batch 1 or ``batch``) on ``device``."""
        B = broadcast_batch(plan=self.batch_size, condition=batch)
        return ForcedTokens(tuple(m.to(device).expand(B, -1) for m in self.mask),
                            tuple(t.to(device).expand(B, -1) for t in self.tokens))

    def apply(self, si: int, idx_Bl: Tensor) -> Tensor:
        """Overwrite the forced positions of scale ``si`` in the sampled tokens ``idx_Bl`` (B, s_si)."""
        return torch.where(self.mask[si], self.tokens[si].to(idx_Bl.dtype), idx_Bl)


def broadcast_batch(**sizes: int) -> int:
    """The common batch of several inputs, each of batch 1 or of that batch; names them if none."""
    common = max(sizes.values())
    if any(size not in (1, common) for size in sizes.values()):
        listed = ", ".join(f"{name} {size}" for name, size in sizes.items())
        raise ValueError(f"batch sizes do not match ({listed}); each must be 1 or the same B")
    return common


def check_keep_scales(keep_scales, num_scales: int) -> int:
    """Validate ``keep_scales``: an int in [0, S]."""
    if isinstance(keep_scales, bool) or not isinstance(keep_scales, Integral):
        raise TypeError(f"keep_scales must be an int in [0, {num_scales}], got {keep_scales!r}")
    if not 0 <= keep_scales <= num_scales:
        raise ValueError(f"keep_scales must lie in [0, {num_scales}] (0 = ordinary generation, "
                         f"{num_scales} = the prefix unchanged), got {keep_scales}")
    return int(keep_scales)


def one_window(tokenizer, codes, name: str = "codes") -> list[Tensor]:
    """Validated codes of one window: S tensors (B, s_i) from ``AudioCodes`` or a list."""
    try:
        levels = tokenizer.check_codes(codes)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{name}: {err}") from None
    if levels[0].shape[1] != 1:
        raise ValueError(f"{name} must hold one window, got W={levels[0].shape[1]}; "
                         f"pass [c[:, w] for c in {name}] for window w")
    return [c[:, 0] for c in levels]


def check_forced(tokenizer, prefix=None, keep_scales=None, forced=None) -> ForcedTokens | None:
    """The plan of ``generate_codes``'s ``prefix``/``keep_scales``/``forced``, validated.

    Returns:
        The ``ForcedTokens`` to apply, or None when nothing is forced.
    """
    S = tokenizer.config.num_scales
    if prefix is not None or keep_scales is not None:
        if forced is not None:
            raise ValueError("pass either prefix= with keep_scales= or forced=, not both")
        if prefix is None:
            raise ValueError("keep_scales= needs prefix=, the codes whose first scales to keep")
        if keep_scales is None:
            raise ValueError(f"prefix= needs keep_scales=, an int in [0, {S}]")
        keep = check_keep_scales(keep_scales, S)
        return ForcedTokens.from_prefix(one_window(tokenizer, prefix, "prefix"), keep)
    if forced is None:
        return None
    if not isinstance(forced, ForcedTokens):
        raise TypeError(f"forced must be a ForcedTokens, got {type(forced).__name__}")
    one_window(tokenizer, [t.masked_fill(~m, 0) for m, t in zip(forced.mask, forced.tokens)],
               "forced.tokens")  # shapes, and the ids that are used
    return forced


def align_forced(clap_BD: Tensor, plan: ForcedTokens | None) -> tuple[Tensor, ForcedTokens | None]:
    """The condition and the plan expanded to their common batch, the plan on the condition's device."""
    if plan is None:
        return clap_BD, None
    B = broadcast_batch(condition=clap_BD.shape[0], forced=plan.batch_size)
    return clap_BD.expand(B, -1), plan.expand(B, clap_BD.device)


# ------------------------------------------------------------------------------------------ masks
def token_mask(known_BN: Tensor, scales: Sequence[int]) -> list[Tensor]:
    """Tokens whose span lies entirely inside the known samples.

    Args:
        known_BN: Known samples, bool (B, N).
        scales: Tokens per window at each scale.

    Returns:
        S bool tensors (B, s_i): True where every sample the token touches is known.

    Example:
        >>> known_BN = torch.arange(12).unsqueeze(0) < 6  # first half known
        >>> [m.int().tolist() for m in token_mask(known_BN, (1, 2, 3, 5))]
        [[[0]], [[1, 0]], [[1, 0, 0]], [[1, 1, 0, 0, 0]]]
    """
    B, N = known_BN.shape
    unknown_BN1 = torch.zeros(B, N + 1, dtype=torch.long, device=known_BN.device)
    unknown_BN1[:, 1:] = (~known_BN).long().cumsum(dim=1)  # unknown samples before each index
    masks = []
    for s in scales:
        j = torch.arange(s, device=known_BN.device)
        lo, hi = j * N // s, -(-(j + 1) * N // s)  # floor(jN/s), ceil((j+1)N/s)
        masks.append(unknown_BN1[:, hi] == unknown_BN1[:, lo])
    return masks


def known_samples(known, window: int, sample_rate: int) -> Tensor:
    """A known-region argument as a bool mask over one window.

    Args:
        known: A bool tensor or array shaped (N,) or (B, N) over the window's N samples; or time in
            seconds: one ``(start, end)`` pair or a list of them, each ``0 <= start <= end <= N / rate``.
            Sample n is known when ``round(start * rate) <= n < round(end * rate)``.
        window: N.
        sample_rate: Rate of the window in Hz.

    Returns:
        Bool tensor (B, N) or (1, N), on the CPU.
    """
    if isinstance(known, np.ndarray):
        known = torch.from_numpy(known)
    if isinstance(known, Tensor):
        if known.dtype != torch.bool:
            raise TypeError(f"known must be a bool mask (or (start, end) seconds), got dtype {known.dtype}")
        known_BN = known.unsqueeze(0) if known.ndim == 1 else known
        if known_BN.ndim != 2 or known_BN.shape[1] != window or known_BN.shape[0] == 0:
            raise ValueError(f"known must be shaped ({window},) or (B, {window}), one flag per sample of "
                             f"the window; got {tuple(known.shape)}")
        return known_BN.cpu()
    seconds = window / sample_rate
    pairs = [known] if _is_pair(known) else known
    if not isinstance(pairs, Sequence) or isinstance(pairs, str) or not all(_is_pair(p) for p in pairs):
        raise TypeError(f"known must be a bool mask of {window} samples, a (start, end) pair in seconds "
                        f"or a list of pairs; got {type(known).__name__}")
    known_1N = torch.zeros(1, window, dtype=torch.bool)
    for start, end in pairs:
        if not (math.isfinite(start) and math.isfinite(end) and 0 <= start <= end <= seconds):
            raise ValueError(f"known interval ({start}, {end}) must satisfy 0 <= start <= end <= "
                             f"{seconds:g} s")
        known_1N[0, round(start * sample_rate):round(end * sample_rate)] = True
    return known_1N


def _is_pair(value) -> bool:
    return (isinstance(value, Sequence) and len(value) == 2
            and all(isinstance(v, Real) and not isinstance(v, bool) for v in value))


def forced_map(mask: Sequence[Tensor], width: int = 75, item: int = 0) -> str:
    """Text figure of a plan: one row per scale, ``#`` forced and ``.`` sampled, time left to right.

    Args:
        mask: S bool tensors (B, s_i) or (s_i,), e.g. ``ForcedTokens.mask``.
        width: Characters per row; character c shows the token under the time ``(c + 0.5) / width``.
        item: Which batch item to draw.

    Returns:
        S lines ``"scale  i  s_i | ####....."``.
    """
    lines = []
    for si, m in enumerate(mask):
        row = m[item] if m.ndim == 2 else m
        s = row.shape[0]
        cells = "".join("#" if row[(2 * c + 1) * s // (2 * width)] else "." for c in range(width))
        lines.append(f"scale {si:2d} {s:3d} | {cells}")
    return "\n".join(lines)


# ------------------------------------------------------------------------ variations and inpainting
def _condition(gen: WindowGenerator, clap_emb, prompt, audio_BCT, rate: int | None) -> Tensor:
    """The given condition, or else the CLAP embedding of the audio being edited."""
    if clap_emb is None and prompt is None:
        if audio_BCT is None:
            raise ValueError("give a condition (clap_emb= or prompt=) when editing codes")
        return gen.clap_vectors(audio=audio_BCT, sample_rate=rate)
    return gen.clap_vectors(clap_emb, prompt=prompt)


def vary(gen: WindowGenerator, audio, sample_rate: int, *, keep_scales: int, clap_emb=None,
         prompt=None, **kwargs) -> Tensor:
    """Encode audio, keep its first ``keep_scales`` scales in every window, resample the rest.

    See ``AARGenerator.vary``. Each window is varied on its own (the windows form one batch).
    """
    from aar.audio import as_audio_batch, check_sample_rate
    from aar.generation.options import check_generation_kwargs

    keep = check_keep_scales(keep_scales, gen.tokenizer.config.num_scales)
    check_generation_kwargs(kwargs, gen.device)
    wav_BCT = as_audio_batch(audio, "audio")
    sample_rate = check_sample_rate(sample_rate)
    progress = bool(kwargs.get("progress", False))
    codes = gen.tokenizer.encode(wav_BCT, sample_rate, progress=progress)
    clap_ED = _condition(gen, clap_emb, prompt, wav_BCT, sample_rate)
    W = codes.num_windows
    B = broadcast_batch(audio=codes.batch_size, condition=clap_ED.shape[0])
    clap_BWD = clap_ED.expand(B, -1).repeat_interleave(W, dim=0)  # row b * W + w
    prefix = [c.expand(B, -1, -1).reshape(B * W, -1) for c in codes]
    out = gen.generate_codes(clap_BWD, prefix=prefix, keep_scales=keep, **kwargs)
    levels = tuple(c.reshape(B, W, -1) for c in out)
    return gen.tokenizer.decode(AudioCodes(levels, codes.length, codes.sample_rate), progress=progress)


def inpaint(gen: WindowGenerator, codes_or_audio, known, clap_emb=None, *,
            sample_rate: int | None = None, prompt=None, **kwargs):
    """Regenerate the unknown part of one window; see ``AARGenerator.inpaint``.

    Audio longer than one window is refused here: ``aar.generation.long_generation.inpaint`` (what
    ``AARGenerator.inpaint`` calls) takes it window by window.
    """
    from aar.audio import as_audio_batch, check_sample_rate
    from aar.generation.options import check_generation_kwargs

    tok = gen.tokenizer
    known_BN = known_samples(known, tok.config.window, tok.sample_rate)
    check_generation_kwargs(kwargs, gen.device)
    is_codes = isinstance(codes_or_audio, (AudioCodes, list, tuple))
    if is_codes:
        levels, wav_BCT = one_window(tok, codes_or_audio), None
        length = codes_or_audio.length if isinstance(codes_or_audio, AudioCodes) else tok.config.window
        rate = codes_or_audio.sample_rate if isinstance(codes_or_audio, AudioCodes) else tok.sample_rate
    else:
        if sample_rate is None:
            raise ValueError("inpainting audio needs sample_rate= (its rate in Hz)")
        sample_rate = check_sample_rate(sample_rate)
        wav_BCT = as_audio_batch(codes_or_audio, "audio")
        encoded = tok.encode(wav_BCT, sample_rate)
        if encoded.num_windows != 1:
            raise ValueError(f"aar.generation.editing.inpaint edits one window: audio must last at most "
                             f"{tok.config.window} samples at {tok.sample_rate} Hz, got {encoded.length}; "
                             "aar.generation.long_generation.inpaint (gen.inpaint) takes longer clips")
        levels, length, rate = encoded.window(0), encoded.length, sample_rate
    plan = ForcedTokens.from_known(levels, known_BN)
    clap_BD = _condition(gen, clap_emb, prompt, wav_BCT, sample_rate)
    out = gen.generate_codes(clap_BD, forced=plan, **kwargs)
    out = AudioCodes(out.codes, length, rate)
    return out if is_codes else tok.decode(out)
