"""Next-scale sampling: one window's S scales in S transformer steps, with classifier-free guidance.

Legend: B batch, D CLAP dim, S scales, s_i tokens of scale i, V codebook size, E latent width,
F frames per window.

Step si runs the whole scale si against the KV cache. With guidance the conditional and
unconditional branches run as one batch of 2B, and their logits are mixed with the ramp
``t = cfg * si / (S - 1)``: ``(1 + t) * cond - t * uncond``. The drawn tokens of scale si are
embedded by the tokenizer's codebook and phi convolution and added to the running latent ``f``
(B, E, F); ``f`` area-resampled to scale si + 1 is the next step's input.

Each condition is its own request: the batch of 2B holds its rows as B pairs (conditional row,
unconditional partner), which the transformer computes apart (``groups=B``), and the phi convolution
runs row by row, so a row's logits are those of a call with its condition alone (B = 1 runs the
official order, conditional then unconditional). With one random stream per row (``seed=[...]``) a
batch draws exactly the tokens of its single calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from aar.generation.sampling import cfg_mix, check_row_generators, guidance_scale, sample
from aar.nn.quantizer import ScaleQuantizer
from aar.nn.transformer import AARTransformer

if TYPE_CHECKING:
    from aar.generation.editing import ForcedTokens
    from aar.generation.options import SamplingOptions


@dataclass(frozen=True, eq=False)
class ScaleProgress:
    """One finished scale of generation, as a ``callback=`` receives it.

    Decoding ``codes`` gives a coarse-to-fine preview of the window:
    ``gen.tokenizer.decode(list(p.codes), num_scales=p.index + 1)``.

    Attributes:
        index: The scale just finished, 0..S-1.
        num_scales: S.
        codes: The tokens of scales 0..index, each a LongTensor (B, s_j), forced tokens included.
        window: The window being generated, in long generation; 0 otherwise.
        num_windows: Windows of a long generation; 1 otherwise.
    """

    index: int
    num_scales: int
    codes: tuple[torch.Tensor, ...]
    window: int = 0
    num_windows: int = 1


def sample_scales(
    model: AARTransformer,
    quantizer: ScaleQuantizer,
    clap_BD: torch.Tensor,
    options: SamplingOptions,
    *,
    generator: torch.Generator | list[torch.Generator] | None,
    progress: bool = False,
    callback: Callable[[ScaleProgress], object] | None = None,
    forced: ForcedTokens | None = None,
) -> list[torch.Tensor]:
    """Draw the tokens of every scale of one window per condition.

    Arguments are validated by the caller (``AARGenerator.generate_codes``).

    Args:
        model: The transformer.
        quantizer: The paired tokenizer's quantizer (codebooks, phi, resampling).
        clap_BD: CLAP vectors (B, D).
        options: Guidance strength (0 runs the conditional branch alone), top-k, top-p and
            temperature.
        generator: The random stream of the draws, or one per condition (``aar.generation.sampling.draw``).
        progress: Show a progress bar over the S steps.
        callback: Called with a ``ScaleProgress`` after each scale; it cannot change the tokens.
            An exception it raises stops generation and propagates (the KV cache is emptied).
        forced: An ``aar.generation.editing.ForcedTokens`` plan: its known tokens replace the draws before
            they update ``f``, so the random stream is that of ordinary generation.

    Returns:
        S LongTensors (B, s_i).
    """
    S = model.config.num_scales
    B = clap_BD.shape[0]
    check_row_generators(generator, B)
    cfg = float(options.cfg)
    guided = cfg != 0  # cfg 0 takes nothing from the unconditional branch: skip running it
    # With guidance the rows are c_0, u_0, c_1, u_1, ...: request b is rows 2b and 2b + 1.
    clap_2BD = torch.stack([clap_BD, model.uncond_clap(B)], dim=1).flatten(0, 1) if guided else clap_BD
    cond_2BC = model.condition(clap_2BD, groups=B)
    f_BEF = clap_BD.new_zeros(B, model.config.latent_dim, quantizer.frames)
    x_BlE, levels = None, []
    steps = range(S)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="generate", unit="scale")
    with model.kv_cache() as cache:
        for si in steps:
            x_2BlE = x_BlE.repeat_interleave(2, dim=0) if guided and x_BlE is not None else x_BlE
            logits_BlV = model.step(cache, cond_2BC, si, x_2BlE, groups=B).float()
            if guided:
                cond_BlV, uncond_BlV = logits_BlV.unflatten(0, (B, 2)).unbind(1)
                logits_BlV = cfg_mix(cond_BlV, uncond_BlV, guidance_scale(cfg, si, S))
            idx_Bl = sample(logits_BlV, top_k=options.top_k, top_p=options.top_p,
                            temperature=options.temperature, generator=generator)
            if forced is not None:
                idx_Bl = forced.apply(si, idx_Bl)
            levels.append(idx_Bl)
            if callback is not None:
                callback(ScaleProgress(si, S, tuple(c.clone() for c in levels)))
            f_BEF = f_BEF + scale_residual(quantizer, si, idx_Bl)
            if si + 1 < S:
                x_BlE = quantizer.next_scale_input(f_BEF, si + 1)
    return levels


def scale_residual(quantizer: ScaleQuantizer, si: int, idx_Bl: torch.Tensor) -> torch.Tensor:
    """``quantizer.scale_residual`` row by row, (B, s_si) -> (B, E, F): a convolution's sums depend on
    the batch size (oneDNN), and each row must get what it gets alone."""
    return torch.cat([quantizer.scale_residual(si, idx_1l) for idx_1l in idx_Bl.split(1)])
