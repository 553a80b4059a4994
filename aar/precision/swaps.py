"""Precision as module swaps: int8 and bfloat16 layers and blocks put in place of float32 ones.

Legend: B batch, l tokens of the running step, C embed_dim, H heads, c head dim.

``aar.nn`` holds one arithmetic path per block, the official float32 one. A faster path is a set of
modules swapped into a float32 transformer, in place, the way ``torch.ao.quantization.quantize_dynamic``
swaps ``nn.Linear`` for its dynamic int8 version:

- the products: ``Int8Linear`` (``aar.precision.int8``) or ``ReducedLinear`` (``aar.precision.reduced``)
  take the place of ``Linear``;
- the elementwise passes around them: a path whose products are approximate already fuses a few
  passes (``FusedAdaLNBlock``: the AdaLN multiply-add and the gated residual in one ``addcmul``
  each, rounded once instead of twice; ``FusedCosineSelfAttention``: each query and key times its
  scale over its norm, in one pass). int8 also takes the exact (erf) GELU (``ErfFeedForward``), about
  3x faster on the CPU than the tanh form it approximates; they differ by at most 5e-4, far below the
  int8 rounding of ``fc2``'s input that follows. bfloat16 keeps the tanh form: with it the fixture's
  greedy tokens stay those of float32 at every coarse scale (``tests/test_fast_paths.py``); with the
  erf form they did not.

The fused block classes subclass the float ones and add no state, so swapping one in or out changes
the object's class only; :func:`to_float32` undoes every swap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aar.nn.block import AdaLNBlock, CosineSelfAttention, FeedForward
from aar.nn.linear import Linear
from aar.precision.int8 import Int8Linear
from aar.precision.reduced import ReducedLinear

#: The output head stays a float32 ``Linear`` on every path: it sets the logits (int8 there raised
#: the fixture's KL tenfold; a bfloat16 step at logits of ~12 is 1/16).
HEAD = "head"


class FusedCosineSelfAttention(CosineSelfAttention):
    """``CosineSelfAttention`` that scales unit queries and keys in one pass."""

    @staticmethod
    def unit_queries_keys(qk_2BHlc: Tensor, scale_21H11: Tensor) -> tuple[Tensor, Tensor]:
        """Every row of queries and keys times its scale over its norm: q and k, each (B, H, l, c)."""
        q, k = (qk_2BHlc * (scale_21H11 / qk_2BHlc.norm(dim=-1, keepdim=True).clamp_min(1e-12))).unbind(0)
        return q, k


class FusedAdaLNBlock(AdaLNBlock):
    """``AdaLNBlock`` whose AdaLN multiply-add and gated residuals are one ``torch.addcmul`` each."""

    def modulate(self, x_BlC: Tensor, scale_B1C: Tensor, shift_B1C: Tensor) -> Tensor:
        normed_BlC = F.layer_norm(x_BlC, x_BlC.shape[-1:], eps=self.norm_eps)
        return torch.addcmul(shift_B1C, normed_BlC, scale_B1C)

    @staticmethod
    def add_gated(x_BlC: Tensor, h_BlC: Tensor, gate_B1C: Tensor) -> Tensor:
        return torch.addcmul(x_BlC, h_BlC, gate_B1C)


class ErfFeedForward(FeedForward):
    """``FeedForward`` with the exact (erf) GELU."""

    @staticmethod
    def activation(h: Tensor) -> Tensor:
        return F.gelu(h)


#: Each fused class and the float class it replaces.
_FLOAT_OF = {FusedCosineSelfAttention: CosineSelfAttention, FusedAdaLNBlock: AdaLNBlock,
             ErfFeedForward: FeedForward}


def int8_layer_names(transformer: nn.Module) -> list[str]:
    """The layers int8 quantizes: attention, FFN and AdaLN of every block, and the head's AdaLN.

    The attention and FFN products are 99 % of a step's work. AdaLN runs once per generation but
    reads 100 M weights to do so: int8 reads a quarter of the bytes (about 60 -> 9 ms on one core)
    and moved the accuracy gates by less than 1 %. The word embedding and condition layers stay
    float32.
    """
    per_block = ("attn.mat_qkv", "attn.proj", "ffn.fc1", "ffn.fc2", "ada_lin.1")
    return [*(f"blocks.{i}.{name}" for i in range(len(transformer.blocks)) for name in per_block),
            "head_nm.ada_lin.1"]


def _replace(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


def _fuse(transformer: nn.Module, erf_gelu: bool) -> None:
    for module in transformer.modules():
        if type(module) is AdaLNBlock:
            module.__class__ = FusedAdaLNBlock
        elif type(module) is CosineSelfAttention:
            module.__class__ = FusedCosineSelfAttention
        elif type(module) is FeedForward and erf_gelu:
            module.__class__ = ErfFeedForward


def to_float32(transformer: nn.Module) -> nn.Module:
    """Undo every swap, in place: float ``Linear`` layers (reduced weights cast back to float32) and
    the official blocks, every tensor float32.

    Returns:
        ``transformer``.
    """
    for name, module in list(transformer.named_modules()):
        if isinstance(module, Int8Linear):
            _replace(transformer, name, module.to_float())
        elif isinstance(module, ReducedLinear):
            layer = Linear(module.in_features, module.out_features, bias=False, device="meta")  # no init
            layer.weight = nn.Parameter(module.weight.detach().float(), module.weight.requires_grad)
            layer.register_parameter("bias", module.bias)
            _replace(transformer, name, layer)
        elif type(module) in _FLOAT_OF:
            module.__class__ = _FLOAT_OF[type(module)]
    return transformer.float()


def to_int8(transformer: nn.Module, reduce_range: bool | None = None, emulate: bool = False) -> nn.Module:
    """Swap in int8 products for :func:`int8_layer_names` and the fused blocks, in place.

    Args:
        transformer: A float32 ``AARTransformer`` on the CPU (any earlier swap is undone first).
        reduce_range: 7-bit activations; None: where the kernel would saturate 8-bit ones.
        emulate: Float32 emulation of the int8 rounding instead of the kernel.

    Returns:
        ``transformer``.
    """
    to_float32(transformer)
    for name in int8_layer_names(transformer):
        layer = transformer.get_submodule(name)
        _replace(transformer, name, Int8Linear.from_float(layer, reduce_range, emulate))
    _fuse(transformer, erf_gelu=True)
    return transformer


def to_reduced(transformer: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Give every linear layer but the head ``dtype`` (bfloat16 or float16) weights, and fuse the
    blocks, in place. Everything else stays float32.

    Returns:
        ``transformer``.
    """
    to_float32(transformer)
    for name, module in list(transformer.named_modules()):
        if isinstance(module, nn.Linear) and name != HEAD:
            _replace(transformer, name, ReducedLinear.from_float(module, dtype))
    _fuse(transformer, erf_gelu=False)
    return transformer
