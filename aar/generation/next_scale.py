"""Next-scale sampling: one window's S scales in S transformer steps, with classifier-free guidance.

Legend: B batch, D CLAP dim, S scales, s_i tokens of scale i, V codebook size, E latent width,
F frames per window.

Step si runs the whole scale si against the KV cache. With guidance the conditional and
unconditional branches run as one batch of 2B, and their logits are mixed with the ramp
``t = cfg * si / (S - 1)``: ``(1 + t) * cond - t * uncond``. The drawn tokens of scale si are
embedded by the tokenizer's codebook and phi convolution and added to the running latent ``f``
(B, E, F); ``f`` area-resampled to scale si + 1 is the next step's input.
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
    cond_2BC = model.condition(torch.cat([clap_BD, model.uncond_clap(B)]) if guided else clap_BD)
    f_BEF = clap_BD.new_zeros(B, model.config.latent_dim, quantizer.frames)
    x_BlE, levels = None, []
    steps = range(S)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="generate", unit="scale")
    with model.kv_cache() as cache:
        for si in steps:
            x_2BlE = torch.cat([x_BlE, x_BlE]) if guided and x_BlE is not None else x_BlE
            logits_BlV = model.step(cache, cond_2BC, si, x_2BlE).float()
            if guided:
                logits_BlV = cfg_mix(logits_BlV[:B], logits_BlV[B:], guidance_scale(cfg, si, S))
            idx_Bl = sample(logits_BlV, top_k=options.top_k, top_p=options.top_p,
                            temperature=options.temperature, generator=generator)
            if forced is not None:
                idx_Bl = forced.apply(si, idx_Bl)
            levels.append(idx_Bl)
            if callback is not None:
                callback(ScaleProgress(si, S, tuple(c.clone() for c in levels)))
            f_BEF = f_BEF + quantizer.scale_residual(si, idx_Bl)
            if si + 1 < S:
                x_BlE = quantizer.next_scale_input(f_BEF, si + 1)
    return levels
