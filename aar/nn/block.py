"""One block of the AAR transformer: AdaLN modulation, cosine self-attention, feed-forward.

Legend: B batch, L tokens seen, l tokens of the running step, C embed_dim, H heads, c head dim
(C // H).

Blocks in full precision run the official arithmetic bit for bit. Blocks whose products are
reduced (int8 copies or bfloat16 weights, ``aar.nn.linear``) are approximate already, and fuse a
few elementwise passes (``_reduced``).

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


def _modulate(x_BLC: Tensor, scale_B1C: Tensor, shift_B1C: Tensor, eps: float, fused: bool = False) -> Tensor:
    """Affine-free LayerNorm, times ``scale_B1C`` (already ``1 + s``) plus ``shift_B1C``.

    ``fused`` does the multiply-add in one pass (``torch.addcmul``, rounded once instead of twice).
    """
    normed_BLC = F.layer_norm(x_BLC, x_BLC.shape[-1:], eps=eps)
    return torch.addcmul(shift_B1C, normed_BLC, scale_B1C) if fused else normed_BLC * scale_B1C + shift_B1C


def _add_gated(x_BLC: Tensor, h_BLC: Tensor, gate_B1C: Tensor, fused: bool) -> Tensor:
    """The gated residual ``x + h * gate``; ``fused`` as in ``_modulate``."""
    return torch.addcmul(x_BLC, h_BLC, gate_B1C) if fused else x_BLC + h_BLC * gate_B1C


def _reduced(layer: Linear, x: Tensor) -> bool:
    """Whether ``layer`` multiplies in reduced precision (int8, or weights narrower than ``x``).

    Such blocks are approximate already, so they fuse elementwise passes (``_modulate``,
    ``_add_gated``, the query scaling) that full-precision blocks run as the official code does.
    """
    return layer.int8 is not None or layer.weight.dtype != x.dtype


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
        qk_2BHlc, scale_21H11 = qkv_3BHlc[:2], scale_21H11.to(x_BlC.dtype)
        if _reduced(self.mat_qkv, x_BlC):  # one pass: every row times its scale over its norm
            q, k = (qk_2BHlc * (scale_21H11 / qk_2BHlc.norm(dim=-1, keepdim=True).clamp_min(1e-12))).unbind(0)
        else:  # the official arithmetic: normalise, then scale the queries by the temperature
            q, k = F.normalize(qk_2BHlc, dim=-1).unbind(0)  # cosine attention: unit q and k
            q = q * scale_21H11[0]  # (B, H, l, c)
        v = qkv_3BHlc[2]
        if past is not None:
            k, v = past.append(k, v)  # (B, H, L_seen, c), written in place after the cache
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask_lL, scale=1.0)
        out = out.transpose(1, 2).reshape(B, l, C)  # (B, H, l, c) -> (B, l, C)
        return self.proj(out, groups=groups)


class FeedForward(nn.Module):
    """Linear -> GELU(tanh) -> Linear.

    With int8 products (``Linear.quantize``) the GELU is the exact (erf) form, about 3x faster on
    the CPU than the tanh form it approximates; the two differ by at most 5e-4, far below the int8
    rounding of ``fc2``'s input that follows (``docs/performance.md``). bfloat16 blocks keep the
    tanh form: with it the fixture's greedy tokens stay those of float32 at every coarse scale
    (``tests/test_fast_paths.py``); with the erf form they did not.
    """

    def __init__(self, embed_dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = Linear(embed_dim, hidden_dim)
        self.fc2 = Linear(hidden_dim, embed_dim)

    def forward(self, x: Tensor, groups: int = 1) -> Tensor:
        approximate = "none" if self.fc1.int8 is not None else "tanh"
        return self.fc2(F.gelu(self.fc1(x, groups=groups), approximate=approximate), groups=groups)


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
        fused = _reduced(self.ffn.fc1, x_BlC)
        h_BlC = self.attn(_modulate(x_BlC, ada.scale_attn, ada.shift_attn, self.norm_eps, fused),
                          mask_lL, past, attn_constants, groups)
        x_BlC = _add_gated(x_BlC, h_BlC, ada.gate_attn, fused)
        h_BlC = self.ffn(_modulate(x_BlC, ada.scale_ffn, ada.shift_ffn, self.norm_eps, fused), groups)
        return _add_gated(x_BlC, h_BlC, ada.gate_ffn, fused)


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
