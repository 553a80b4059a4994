"""The AAR next-scale transformer: a VAR-style decoder over the tokenizer's scales.

Legend: B batch, S scales, L tokens of a window (sum of the scales, 455), l tokens of one scale,
C embed_dim, H heads, c head dim (C // H), D CLAP condition dim (512), Lat latent_dim,
V codebook size.

Teacher forcing (``AARTransformer.forward``) runs all L tokens at once under a block-causal mask:
a token of scale i sees every token of scales <= i. Generation runs one whole scale per
``AARTransformer.step`` against an explicit ``KVCache``, S steps in all, and gets the same logits.
The blocks are in ``aar.nn.block``.

A batch may hold several independent requests: ``groups=G`` splits its B rows into G equal runs of
consecutive rows (a conditional row and its unconditional partner make one request of generation
with guidance), and each request gets the numbers it gets alone (``aar.nn.linear``).
"""

from __future__ import annotations

import math
from itertools import accumulate
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aar.nn.block import AdaLNBlock, AdaLNHead
from aar.nn.kv_cache import KVCache
from aar.nn.linear import Linear
from aar.nn.precision import stream_dtype


class ConditionMLP(nn.Module):
    """Maps a CLAP vector (B, D) to the condition (B, C): Linear -> GELU(tanh) -> Linear."""

    def __init__(self, cond_dim: int, embed_dim: int):
        super().__init__()
        self.fc1 = Linear(cond_dim, embed_dim, bias=False)
        self.fc2 = Linear(embed_dim, embed_dim, bias=False)

    def forward(self, clap_BD: Tensor, groups: int = 1) -> Tensor:
        return self.fc2(F.gelu(self.fc1(clap_BD, groups=groups), approximate="tanh"), groups=groups)


class TransformerShape(Protocol):
    """What ``AARTransformer`` reads from its configuration; ``aar.AARConfig`` is one.

    Blocks know nothing of where these values come from (a ``config.json``, an official
    checkpoint, a test): any object with these attributes builds the model.
    """

    depth: int
    embed_dim: int
    num_heads: int
    cond_dim: int
    norm_eps: float
    max_scale_mul: float
    latent_dim: int
    codebook_size: int
    scales: tuple[int, ...]

    @property
    def mlp_dim(self) -> int: ...  # hidden width of the FFN

    @property
    def num_scales(self) -> int: ...  # S

    @property
    def tokens_per_window(self) -> int: ...  # L, the sum of the scales


class AARTransformer(nn.Module):
    """Next-scale transformer predicting every token of scale i from the scales before it.

    The condition ``cond_BC = condition(clap_BD)`` is both the start token (scale 0, with
    ``pos_start``) and the AdaLN condition of every block. Scale i >= 1 reads ``word_embed`` of its
    next-scale input (the coarser scales' latent, area-resampled to ``scales[i]`` tokens). Every
    position adds ``lvl_embed(scale index) + pos_1LC``.

    Args:
        config: Hyperparameters (an ``aar.AARConfig``); parameter names match the official
            checkpoints.

    Example:
        >>> from aar import AARConfig
        >>> config = AARConfig(depth=1, embed_dim=64, num_heads=1, latent_dim=8, scales=(1, 2, 3))
        >>> model = AARTransformer(config).eval()
        >>> cond_BC = model.condition(torch.randn(2, 512))
        >>> model(cond_BC, torch.randn(2, 5, 8)).shape  # teacher forcing: 1 + 2 + 3 tokens
        torch.Size([2, 6, 1024])
    """

    def __init__(self, config: TransformerShape):
        super().__init__()
        self.config = config
        C, L, S = config.embed_dim, config.tokens_per_window, config.num_scales
        starts = [0, *accumulate(config.scales)]
        #: (start, end) of each scale's tokens in the L positions.
        self.scale_bounds: tuple[tuple[int, int], ...] = tuple(zip(starts[:-1], starts[1:]))

        std = math.sqrt(1 / C / 3)
        self.pos_start = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, config.scales[0], C), std=std))
        self.pos_1LC = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, L, C), std=std))
        uncond = torch.randn(1, config.cond_dim)
        self.register_buffer("uncond_embedding", uncond / uncond.norm())  # (1, D), CLAP is unit-norm
        self.word_embed = Linear(config.latent_dim, C)
        self.class_emb = ConditionMLP(config.cond_dim, C)
        self.lvl_embed = nn.Embedding(S, C)
        nn.init.trunc_normal_(self.lvl_embed.weight, std=std)
        self.blocks = nn.ModuleList(
            AdaLNBlock(C, config.num_heads, config.mlp_dim, config.norm_eps, config.max_scale_mul)
            for _ in range(config.depth)
        )
        self.head_nm = AdaLNHead(C, config.norm_eps)
        self.head = Linear(C, config.codebook_size)
        self.rebuild_buffers()

    def rebuild_buffers(self) -> None:
        """Create the buffers that checkpoints do not hold (scale index of each position)."""
        levels = [si for si, s in enumerate(self.config.scales) for _ in range(s)]
        level_L = torch.tensor(levels, device=self.pos_1LC.device)
        self.register_buffer("level_L", level_L, persistent=False)

    def condition(self, clap_BD: Tensor, groups: int = 1) -> Tensor:
        """The condition (B, C) of CLAP vectors ``clap_BD`` (B, D), in ``groups`` requests."""
        if clap_BD.ndim != 2 or clap_BD.shape[1] != self.config.cond_dim:
            raise ValueError(
                f"clap embedding must have shape (B, {self.config.cond_dim}), "
                f"got {tuple(clap_BD.shape)}"
            )
        _check_groups(clap_BD.shape[0], groups)
        return self.class_emb(clap_BD.to(self.activation_dtype), groups)

    def uncond_clap(self, batch_size: int) -> Tensor:
        """The stored unconditional CLAP vector repeated ``batch_size`` times, (B, D)."""
        return self.uncond_embedding.to(self.activation_dtype).expand(batch_size, -1)

    @property
    def activation_dtype(self) -> torch.dtype:
        """Dtype of the activations: float32, also when the weights are bfloat16 or float16."""
        return stream_dtype(self.head.weight.dtype)

    def kv_cache(self) -> KVCache:
        """A fresh, empty ``KVCache`` for ``step``; use it in a ``with`` block."""
        return KVCache(self.config.depth, capacity=self.config.tokens_per_window)

    def _embed(self, cond_BC: Tensor, x_BlLat: Tensor | None, start: int, end: int, groups: int = 1
               ) -> Tensor:
        """Input embeddings of positions ``start:end``: start token and/or word embeddings."""
        parts = []
        if start == 0:
            parts.append(cond_BC.unsqueeze(1) + self.pos_start)  # (B, s_0, C)
        if x_BlLat is not None:
            x_BlLat = x_BlLat.to(self.activation_dtype)
            parts.append(self.word_embed(x_BlLat, groups=groups))
        x_BlC = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        lvl_pos_BlC = self.lvl_embed(self.level_L[start:end]) + self.pos_1LC[:, start:end]
        return x_BlC + lvl_pos_BlC  # the official order: level and position summed first

    def _logits(self, x_BlC: Tensor, cond_BC: Tensor, groups: int, ada: tuple[Tensor, Tensor] | None = None
                ) -> Tensor:
        return self.head(self.head_nm(x_BlC, cond_BC, ada, groups), groups=groups)

    def _step_constants(self, cond_BC: Tensor, groups: int) -> list:
        """Every block's ``BlockConstants``, then the head's AdaLN parameters: they depend on the
        condition and the weights only, so generation computes them once."""
        return [*(block.constants(cond_BC, groups) for block in self.blocks),
                self.head_nm.adaln(cond_BC, groups)]

    def _check_input(self, x: Tensor, batch: int, tokens: int, name: str) -> None:
        want = (batch, tokens, self.config.latent_dim)
        if tuple(x.shape) != want:
            raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")

    def forward(self, cond_BC: Tensor, x_BLLat: Tensor, groups: int = 1) -> Tensor:
        """Teacher-forced logits of every token of a window.

        Args:
            cond_BC: Condition from ``condition``, (B, C).
            x_BLLat: Next-scale inputs of scales 1..S-1 concatenated, (B, L - s_0, Lat).
            groups: Independent requests in the batch, each computed as if alone (module docstring).

        Returns:
            logits_BLV: (B, L, V); position j is predicted from the scales before its own.
        """
        B, L = cond_BC.shape[0], self.config.tokens_per_window
        self._check_input(x_BLLat, B, L - self.config.scales[0], "x_BLLat")
        _check_groups(B, groups)
        x_BLC = self._embed(cond_BC, x_BLLat, 0, L, groups)
        mask_LL = self.level_L.unsqueeze(1) >= self.level_L.unsqueeze(0)  # block-causal
        for block in self.blocks:
            x_BLC = block(x_BLC, cond_BC, mask_LL, groups=groups)
        return self._logits(x_BLC, cond_BC, groups)

    def step(
        self, cache: KVCache, cond_BC: Tensor, si: int, x_BlLat: Tensor | None = None, groups: int = 1
    ) -> Tensor:
        """Run one whole scale against ``cache`` and append its keys and values.

        Args:
            cache: Holds scales ``0..si-1``; ``cache.num_scales`` must equal ``si``.
            cond_BC: Condition from ``condition``, (B, C).
            si: Scale index, 0..S-1.
            x_BlLat: Next-scale input of scale ``si``, (B, scales[si], Lat); None for ``si == 0``,
                which runs the start token.
            groups: Independent requests in the batch, each computed as if alone (module docstring);
                the same at every step of a generation.

        Returns:
            logits_BlV: (B, scales[si], V), equal to ``forward``'s logits of that scale.
        """
        S = self.config.num_scales
        if not 0 <= si < S:
            raise ValueError(f"scale index si must lie in [0, {S - 1}], got {si}")
        if cache.num_scales != si:
            raise ValueError(f"cache holds {cache.num_scales} scale(s); the next step is si="
                             f"{cache.num_scales}, got si={si}")
        B = cond_BC.shape[0]
        if cache.batch_size not in (None, B):
            raise ValueError(f"cache holds batch size {cache.batch_size}, got cond of batch {B}")
        _check_groups(B, groups)
        if si == 0 and x_BlLat is not None:
            raise ValueError("scale 0 runs the start token: pass x_BlLat=None")
        start, end = self.scale_bounds[si]
        if si > 0:
            if x_BlLat is None:
                raise ValueError(f"scale {si} needs its next-scale input x_BlLat, got None")
            self._check_input(x_BlLat, B, end - start, "x_BlLat")
        x_BlC = self._embed(cond_BC, x_BlLat, start, end, groups)
        constants = cache.constants(cond_BC, lambda c: self._step_constants(c, groups))  # once per generation
        for block, slot, block_constants in zip(self.blocks, cache.slots(), constants):
            # attends to itself and the past
            x_BlC = block(x_BlC, cond_BC, past=slot, constants=block_constants, groups=groups)
        cache.commit(end - start)
        return self._logits(x_BlC, cond_BC, groups, constants[-1])


def _check_groups(batch: int, groups: int) -> None:
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or batch % groups:
        raise ValueError(f"groups must be a positive int that divides the batch ({batch} rows), "
                         f"got {groups!r}")
