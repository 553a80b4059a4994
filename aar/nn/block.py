"""One block of the AAR transformer: AdaLN modulation, cosine self-attention, feed-forward.

Legend: B batch, L tokens seen, l tokens of the running step, C embed_dim, H heads, c head dim
(C // H).

Every block runs the official arithmetic, bit for bit, and nothing else. The elementwise passes a
faster variant may fuse are methods (``CosineSelfAttention.unit_queries_keys``, ``AdaLNBlock.modulate``
and ``AdaLNBlock.add_gated``, ``FeedForward.activation``), so ``aar.precision`` can swap in a
subclass that overrides them, without a branch here.

``groups`` says how many independent requests a batch holds (equal runs of consecutive rows); the
products take it (``aar.nn.linear``), so that a request's numbers do not depend on its batch-mates.
Everything else here already computes each row, or each (row, head), on its own.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aar.nn.kv_cache import KVSlot
from aar.nn.linear import Linear


class AdaLN(NamedTuple):
    """One block's AdaLN parameters for one condition, each (B, 1, C).

    The scales are stored as ``1 + s``, ready to multiply: generation computes them once per
    condition instead of once per scale.
    """

    gate_attn: Tensor
    gate_ffn: Tensor
    scale_attn: Tensor
    scale_ffn: Tensor
    shift_attn: Tensor
    shift_ffn: Tensor


def _ada(ada_lin: nn.Sequential, cond_BC: Tensor, parts: int, groups: int = 1) -> list[Tensor]:
    """AdaLN parameters of the condition: SiLU -> Linear, (B, C) -> ``parts`` x (B, 1, C)."""
    return list(ada_lin[1](F.silu(cond_BC), groups=groups).unsqueeze(1).chunk(parts, dim=-1))


def _modulate(x_BLC: Tensor, scale_B1C: Tensor, shift_B1C: Tensor, eps: float) -> Tensor:
    """Affine-free LayerNorm, times ``scale_B1C`` (already ``1 + s``) plus ``shift_B1C``."""
    return F.layer_norm(x_BLC, x_BLC.shape[-1:], eps=eps) * scale_B1C + shift_B1C


class CosineSelfAttention(nn.Module):
    """Multi-head self-attention on L2-normalised queries and keys with a learned temperature.

    Args:
        embed_dim: Width C.
        num_heads: Heads H; the head dim is ``C // H``.
        max_scale_mul: Upper bound on the log of the per-head temperature.
    """

    def __init__(self, embed_dim: int, num_heads: int, max_scale_mul: float = math.log(100.0)):
        super().__init__()
        self.num_heads = num_heads
        self.max_scale_mul = max_scale_mul
        self.scale_mul_1H11 = nn.Parameter(torch.full((1, num_heads, 1, 1), math.log(4.0)))
        self.q_bias = nn.Parameter(torch.zeros(embed_dim))
        self.v_bias = nn.Parameter(torch.zeros(embed_dim))
        self.mat_qkv = Linear(embed_dim, 3 * embed_dim, bias=False)
        self.proj = Linear(embed_dim, embed_dim)

    def constants(self) -> tuple[Tensor, Tensor]:
        """The qkv bias ``[q_bias, 0, v_bias]`` (3C,) and the scales of unit queries and keys
        (2, 1, H, 1, 1): the per-head temperature, then ones.

        They depend on the parameters only, so generation computes them once, not once per scale.
        """
        bias_3C = torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))
        temperature_1H11 = self.scale_mul_1H11.clamp_max(self.max_scale_mul).exp()
        return bias_3C, torch.stack((temperature_1H11, torch.ones_like(temperature_1H11)))

    def forward(
        self, x_BlC: Tensor, mask_lL: Tensor | None = None, past: KVSlot | None = None,
        constants: tuple[Tensor, Tensor] | None = None, groups: int = 1,
    ) -> Tensor:
        """Attend from ``x_BlC`` to the cached tokens in ``past`` followed by ``x_BlC`` itself.

        Args:
            x_BlC: Normalised input, (B, l, C).
            mask_lL: Boolean mask (l, L_seen), True where a query may attend; None attends to all.
            past: The block's ``KVSlot``, which holds the keys and values of earlier tokens and takes
                this step's; None attends within ``x_BlC`` only.
            constants: ``self.constants()`` if already computed.
            groups: Independent requests in the batch (``aar.nn.linear``).

        Returns:
            The output, (B, l, C).
        """
        B, l, C = x_BlC.shape
        bias_3C, scale_21H11 = self.constants() if constants is None else constants
        qkv_Bl3C = self.mat_qkv(x_BlC, bias_3C, groups)
        qkv_3BHlc = qkv_Bl3C.view(B, l, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k = self.unit_queries_keys(qkv_3BHlc[:2], scale_21H11.to(x_BlC.dtype))
        v = qkv_3BHlc[2]
        if past is not None:
            k, v = past.append(k, v)  # (B, H, L_seen, c), written in place after the cache
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask_lL, scale=1.0)
        out = out.transpose(1, 2).reshape(B, l, C)  # (B, H, l, c) -> (B, l, C)
        return self.proj(out, groups=groups)

    @staticmethod
    def unit_queries_keys(qk_2BHlc: Tensor, scale_21H11: Tensor) -> tuple[Tensor, Tensor]:
        """Cosine attention's queries and keys: each row normalised, the queries then scaled by the
        temperature ``scale_21H11[0]``. Returns q and k, each (B, H, l, c)."""
        q, k = F.normalize(qk_2BHlc, dim=-1).unbind(0)
        return q * scale_21H11[0], k


class FeedForward(nn.Module):
    """Linear -> GELU(tanh) -> Linear."""

    def __init__(self, embed_dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = Linear(embed_dim, hidden_dim)
        self.fc2 = Linear(hidden_dim, embed_dim)

    def forward(self, x: Tensor, groups: int = 1) -> Tensor:
        return self.fc2(self.activation(self.fc1(x, groups=groups)), groups=groups)

    @staticmethod
    def activation(h: Tensor) -> Tensor:
        """The official GELU, in its tanh form."""
        return F.gelu(h, approximate="tanh")


class BlockConstants(NamedTuple):
    """A block's inputs that stay fixed through a generation: AdaLN parameters and the attention's
    qkv bias and query and key scales (``CosineSelfAttention.constants``)."""

    ada: AdaLN
    attention: tuple[Tensor, Tensor]


class AdaLNBlock(nn.Module):
    """Pre-norm transformer block whose LayerNorm scales, shifts and gates come from the condition.

    Args:
        embed_dim: Width C.
        num_heads: Attention heads H.
        mlp_dim: Hidden width of the FFN.
        norm_eps: Epsilon of the affine-free LayerNorms.
        max_scale_mul: Upper bound on the log of the attention temperature.
    """

    def __init__(
        self, embed_dim: int, num_heads: int, mlp_dim: int, norm_eps: float, max_scale_mul: float
    ):
        super().__init__()
        self.norm_eps = norm_eps
        self.attn = CosineSelfAttention(embed_dim, num_heads, max_scale_mul)
        self.ffn = FeedForward(embed_dim, mlp_dim)
        self.ada_lin = nn.Sequential(nn.SiLU(), Linear(embed_dim, 6 * embed_dim))

    def constants(self, cond_BC: Tensor, groups: int = 1) -> BlockConstants:
        """What the block needs for condition ``cond_BC`` (B, C) beyond its input: the AdaLN
        parameters and the attention's constants, fixed for a whole generation."""
        g1, g2, s1, s2, b1, b2 = _ada(self.ada_lin, cond_BC, 6, groups)  # the official order
        return BlockConstants(AdaLN(g1, g2, 1 + s1, 1 + s2, b1, b2), self.attn.constants())

    def forward(
        self, x_BlC: Tensor, cond_BC: Tensor, mask_lL: Tensor | None = None, past: KVSlot | None = None,
        constants: BlockConstants | None = None, groups: int = 1,
    ) -> Tensor:
        """Run the block; shapes as in ``CosineSelfAttention.forward``, ``cond_BC`` is (B, C).

        ``constants`` is ``self.constants(cond_BC, groups)`` if already known; ``groups`` counts the
        independent requests in the batch (``aar.nn.linear``).
        """
        ada, attn_constants = self.constants(cond_BC, groups) if constants is None else constants
        h_BlC = self.attn(self.modulate(x_BlC, ada.scale_attn, ada.shift_attn), mask_lL, past, attn_constants,
                          groups)
        x_BlC = self.add_gated(x_BlC, h_BlC, ada.gate_attn)
        h_BlC = self.ffn(self.modulate(x_BlC, ada.scale_ffn, ada.shift_ffn), groups)
        return self.add_gated(x_BlC, h_BlC, ada.gate_ffn)

    def modulate(self, x_BlC: Tensor, scale_B1C: Tensor, shift_B1C: Tensor) -> Tensor:
        """The block's AdaLN: affine-free LayerNorm, times ``scale_B1C`` plus ``shift_B1C``."""
        return _modulate(x_BlC, scale_B1C, shift_B1C, self.norm_eps)

    @staticmethod
    def add_gated(x_BlC: Tensor, h_BlC: Tensor, gate_B1C: Tensor) -> Tensor:
        """The gated residual ``x + h * gate``."""
        return x_BlC + h_BlC * gate_B1C


class AdaLNHead(nn.Module):
    """Affine-free LayerNorm with a scale and shift from the condition, before the output head."""

    def __init__(self, embed_dim: int, norm_eps: float):
        super().__init__()
        self.norm_eps = norm_eps
        self.ada_lin = nn.Sequential(nn.SiLU(), Linear(embed_dim, 2 * embed_dim))

    def adaln(self, cond_BC: Tensor, groups: int = 1) -> tuple[Tensor, Tensor]:
        """``(1 + scale, shift)`` of condition ``cond_BC`` (B, C), each (B, 1, C)."""
        scale, shift = _ada(self.ada_lin, cond_BC, 2, groups)
        return 1 + scale, shift

    def forward(
        self, x_BlC: Tensor, cond_BC: Tensor, ada: tuple[Tensor, Tensor] | None = None, groups: int = 1
    ) -> Tensor:
        scale_B1C, shift_B1C = self.adaln(cond_BC, groups) if ada is None else ada
        return _modulate(x_BlC, scale_B1C, shift_B1C, self.norm_eps)
