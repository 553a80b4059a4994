"""The transformer's linear layer: reduced-precision or int8 weights around a float32 stream.

Legend: N rows (any leading dims), K input features, M output features.

``Linear`` is ``nn.Linear`` with two additions, and the same parameter names (checkpoints load
unchanged):

- its weight may be bfloat16 or float16 while activations stay float32 (``aar.nn.precision``);
- ``quantize()`` adds an int8 copy of the weight (``aar.nn.int8``) that every product then uses (on
  the CPU); the float weight stays the parameter (``state_dict`` and saving are unchanged). The copy
  follows ``load_state_dict`` and is dropped (logged) when the weight is replaced (``.to(dtype)``);
  after in-place writes (``nn.init``, optimisers) call ``quantize()`` again.

With a float32 weight and no int8 copy, ``forward`` is ``F.linear``: bit for bit the official
arithmetic.

Batches of independent requests (``groups``). A row of a float product is not rounded the same
whatever the rows around it: BLAS picks its kernel, and with it the order of each row's sums, by the
number of rows. MKL on the AMD EPYC of docs/performance.md rounds a row of a product of 1 to 3 rows
(on 2 threads also 5 to 7 and 9 to 11) differently from the same row in a larger product.
``forward(x, groups=G)`` therefore gives each of G equal runs of consecutive rows the numbers it gets
multiplied alone, so a request gets the same numbers alone or in a batch. int8 products are exact
integer sums scaled row by row (``aar.nn.int8``): one product serves the whole batch.

Multiplying the requests one by one costs what batching saves (fp32 at batch 4: 20 to 35 % more time,
docs/performance.md), and most products do not need it: above a few rows a BLAS kernel rounds a row
the same whatever the rows around it. So the first time a product of a given kind runs (its shapes,
strides, dtypes, memory alignment and the thread count), it runs both ways and the two are compared;
where every request got its own bits from the product over the whole batch, that product serves every
later call of that kind (``_POOLING``). A kernel chooses its blocking from those properties, never
from the values, so one agreement stands for every input; and the answer returned is always one that
equals the requests multiplied apart.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from aar.nn.int8 import Int8Weight
from aar.nn.precision import linear

logger = logging.getLogger(__name__)

_SAME = object()  # "use the layer's own bias"


class Linear(nn.Linear):
    """``nn.Linear`` for mixed-precision weights, with an optional int8 copy of the weight.

    Args:
        in_features: K.
        out_features: M.
        bias: Whether the layer has a bias.

    Attributes:
        int8: The ``Int8Weight`` in use, or None.
    """

    int8: Int8Weight | None = None

    def forward(self, x_NK: Tensor, bias: Tensor | None | object = _SAME, groups: int = 1) -> Tensor:
        """``x_NK @ weight.T + bias``, (..., K) -> (..., M), in ``x_NK``'s dtype.

        Args:
            x_NK: Input (..., K).
            bias: A bias (M,) to use instead of the layer's own, or None for none.
            groups: Independent requests in ``x_NK``, G equal runs of consecutive entries along its
                first dimension: a float product multiplies each alone (module docstring).
        """
        bias_M = self.bias if bias is _SAME else bias
        if self.int8 is not None:
            if self.int8.source is self.weight:
                return self.int8(x_NK, bias_M)  # exact sums: the same for a row in any batch
            logger.warning("the weight of an int8 layer was replaced; the layer runs its new weight "
                           "unquantized (call quantize() to quantize it)")
            self.int8 = None
        if groups == 1:
            return linear(x_NK, self.weight, bias_M)
        return per_request(x_NK, self.weight, bias_M, groups)

    def quantize(self, reduce_range: bool | None = None, emulate: bool = False) -> None:
        """Multiply through an int8 copy of the weight from now on (CPU only, see ``aar.nn.int8``).

        Args:
            reduce_range: 7-bit activations. None (default): where the kernel would saturate 8-bit
                ones (CPUs without VNNI, ``aar.nn.int8.kernel_saturates``).
            emulate: Float32 emulation of the int8 rounding instead of the kernel.

        Raises:
            ValueError: the weight is not on the CPU.
        """
        self.int8 = Int8Weight(self.weight, reduce_range, emulate)
        if getattr(self, "_requantize_hook", None) is None:
            self._requantize_hook = self.register_load_state_dict_post_hook(_requantize)

    def dequantize(self) -> None:
        """Drop the int8 copy: products use the float weight again."""
        self.int8 = None


#: For each kind of product (``_kind``): whether one product over the whole batch gave every request
#: the bits it gets alone (module docstring). Filled by ``per_request``; it never changes a result.
_POOLING: dict[tuple, bool] = {}


def per_request(x_NK: Tensor, weight_MK: Tensor, bias_M: Tensor | None, groups: int) -> Tensor:
    """``linear(x_NK, weight_MK, bias_M)`` with each of ``groups`` requests getting the numbers it gets
    alone: G equal runs of consecutive entries along the first dimension of ``x_NK``, (..., K).

    Runs one product over the whole batch where that was seen to give each request its own bits for
    products of this kind, else one product per request (module docstring).
    """
    assert x_NK.shape[0] % groups == 0, f"{x_NK.shape[0]} rows do not split into {groups} groups"
    kind = (groups, *_kind(x_NK, weight_MK, bias_M))
    pools = _POOLING.get(kind)
    if pools:
        return linear(x_NK, weight_MK, bias_M)
    apart_NM = torch.cat([linear(_aligned(x_gNK), weight_MK, bias_M) for x_gNK in x_NK.chunk(groups)])
    if pools is None:
        _POOLING[kind] = torch.equal(linear(x_NK, weight_MK, bias_M), apart_NM)
    return apart_NM


def _kind(x_NK: Tensor, weight_MK: Tensor, bias_M: Tensor | None) -> tuple:
    """What a kernel may choose its blocking by: shapes, strides, dtypes, device, 64-byte alignment and
    the thread count."""
    return (tuple(x_NK.shape), x_NK.stride(), x_NK.dtype, x_NK.device, x_NK.data_ptr() % 64,
            tuple(weight_MK.shape), weight_MK.stride(), weight_MK.dtype, weight_MK.data_ptr() % 64,
            None if bias_M is None else (bias_M.dtype, bias_M.data_ptr() % 64), torch.get_num_threads())


def _aligned(x: Tensor) -> Tensor:
    """``x``, copied to fresh memory unless 64-byte aligned as a tensor of its own is: MKL rounds
    products of 2 or 3 rows differently when they are not 16-byte aligned."""
    return x if x.data_ptr() % 64 == 0 else x.clone()


def _requantize(layer: Linear, incompatible_keys: object) -> None:
    """After ``load_state_dict``: quantize the loaded weight again if the layer runs int8."""
    if layer.int8 is not None:
        layer.quantize(layer.int8.reduce_range, layer.int8.mode == "emulated")
