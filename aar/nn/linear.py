"""The transformer's linear layer: reduced-precision or int8 weights, opt-in oneDNN weight packing.

Legend: N rows (any leading dims), K input features, M output features.

``Linear`` is ``nn.Linear`` with three additions, and the same parameter names (checkpoints load
unchanged):

- its weight may be bfloat16 or float16 while activations stay float32 (``aar.nn.precision``);
- ``quantize()`` adds an int8 copy of the weight (``aar.nn.int8``) that every CPU product then uses;
  the float weight stays the parameter (``state_dict`` and saving are unchanged). The copy follows
  ``load_state_dict`` and is dropped (logged) when the weight is replaced (``.to(dtype)``); after
  in-place writes (``nn.init``, optimisers) call ``quantize()`` again;
- ``pack()`` lays the weight out once in oneDNN's blocked format for the CPU. PyTorch's CPU
  ``F.linear`` hands the weight to a BLAS that re-lays it out for its kernels at every call; for the
  few-row products of next-scale generation (2 to 150 rows per step) that costs nearly as much as
  the product itself. A packed layer skips it (for products of up to ``PACKED_MAX_ROWS`` rows;
  larger ones gain nothing from it and run unpacked). Its results equal the unpacked ones to float32
  rounding, not bit for bit, so packing is opt-in (``AARGenerator.pack_weights``) and the default
  keeps the official code's exact arithmetic. Speed-ups are measured in docs/performance.md.

A pack is a copy of the weight: it doubles that weight's memory. It is used only on the CPU and
without autograd, and it is dropped (with a log message) as soon as the weight it copied changes:
in place (``load_state_dict``, ``nn.init``, optimisers) or by replacement (``.to()``). Writes through
``weight.data`` bypass PyTorch's version counter and cannot be seen; pack again after them.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from aar.nn.int8 import Int8Weight
from aar.nn.precision import linear

logger = logging.getLogger(__name__)

#: Weight dtypes ``Linear.pack`` accepts (float16 needs matrix units that few CPUs have).
PACKABLE_DTYPES = (torch.float32, torch.bfloat16)
#: Products of more rows than this run unpacked: from about 500 rows on, the BLAS behind ``F.linear``
#: is as fast as oneDNN or faster (measured on 2 AVX-512 cores, docs/performance.md), as its
#: per-call re-layout of the weight is spread over many rows.
PACKED_MAX_ROWS = 512
_SAME = object()  # "use the layer's own bias"
_stale_logged = False


def _log_stale() -> None:
    """Say once per process (then only at debug level) that stale packs were dropped."""
    global _stale_logged
    level = logging.DEBUG if _stale_logged else logging.WARNING
    _stale_logged = True
    logger.log(level, "packed weights changed after pack(); the changed layers run unpacked again "
                      "(call pack_weights() to pack the new weights)")


def packing_available() -> bool:
    """Whether this PyTorch build has the oneDNN operators that ``Linear.pack`` uses."""
    ops = torch.ops.mkldnn
    return bool(
        torch.backends.mkldnn.is_available()
        and hasattr(ops, "_reorder_linear_weight")
        and hasattr(ops, "_linear_pointwise")
    )


class PackedWeight:
    """A weight (M, K) laid out for oneDNN, with what identifies the tensor it was made from.

    Args:
        weight: A float32 or bfloat16 CPU tensor (M, K).
    """

    def __init__(self, weight: Tensor) -> None:
        self.tensor = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)
        self.out_features = weight.shape[0]
        self._source = self._identity(weight)

    @staticmethod
    def _identity(weight: Tensor) -> tuple:
        return weight.data_ptr(), weight._version, weight.dtype, weight.device, tuple(weight.shape)

    def matches(self, weight: Tensor) -> bool:
        """Whether ``weight`` is still the unchanged tensor this pack was made from."""
        return self._identity(weight) == self._source

    def __deepcopy__(self, memo: dict) -> None:
        # A copied module has new weights, which this pack does not match: copies start unpacked.
        return None


class Linear(nn.Linear):
    """``nn.Linear`` for mixed-precision weights, with optional oneDNN packing.

    Args:
        in_features: K.
        out_features: M.
        bias: Whether the layer has a bias.

    Attributes:
        packed: The ``PackedWeight`` in use, or None.
        int8: The ``Int8Weight`` in use, or None (takes precedence over ``packed``).
    """

    packed: PackedWeight | None = None
    int8: Int8Weight | None = None

    def forward(self, x_NK: Tensor, bias: Tensor | None | object = _SAME) -> Tensor:
        """``x_NK @ weight.T + bias``, (..., K) -> (..., M), in ``x_NK``'s dtype.

        Args:
            x_NK: Input (..., K).
            bias: A bias (M,) to use instead of the layer's own, or None for none.
        """
        bias_M = self.bias if bias is _SAME else bias
        if self.int8 is not None:
            if self.int8.source is self.weight:
                return self.int8(x_NK, bias_M)
            logger.warning("the weight of an int8 layer was replaced; the layer runs its new weight "
                           "unquantized (call quantize() to quantize it)")
            self.int8 = None
        if self.packed is not None and not torch.is_grad_enabled() and x_NK.device.type == "cpu":
            if self.packed.matches(self.weight):
                if 0 < x_NK.numel() <= PACKED_MAX_ROWS * x_NK.shape[-1]:
                    return self._packed_forward(x_NK, bias_M)
                return linear(x_NK, self.weight, bias_M)
            _log_stale()
            self.packed = None
        return linear(x_NK, self.weight, bias_M)

    def _packed_forward(self, x_NK: Tensor, bias_M: Tensor | None) -> Tensor:
        dtype = self.weight.dtype
        rows_NK = x_NK.reshape(-1, x_NK.shape[-1]).to(dtype)
        fused_bias = bias_M if dtype == x_NK.dtype else None  # else added in x's dtype below
        y_NM = torch.ops.mkldnn._linear_pointwise(rows_NK, self.packed.tensor, fused_bias, "none", [], "")
        y_NM = y_NM.to(x_NK.dtype)
        if bias_M is not None and fused_bias is None:
            y_NM = y_NM + bias_M.to(x_NK.dtype)
        return y_NM.reshape(*x_NK.shape[:-1], self.packed.out_features)

    def pack(self) -> None:
        """Lay the weight out for oneDNN (a copy of it). Raises ValueError where that cannot run."""
        weight = self.weight
        if weight.device.type != "cpu":
            raise ValueError(f"weight packing is for the CPU; this layer's weight is on {weight.device}")
        if weight.dtype not in PACKABLE_DTYPES:
            allowed = ", ".join(str(d) for d in PACKABLE_DTYPES)
            raise ValueError(f"weight packing takes {allowed} weights, got {weight.dtype}")
        if not packing_available():
            raise ValueError("this PyTorch build has no oneDNN (torch.backends.mkldnn is unavailable), "
                             "so weights cannot be packed")
        self.packed = PackedWeight(weight)

    def quantize(self, reduce_range: bool = False, emulate: bool = False) -> None:
        """Multiply through an int8 copy of the weight from now on (CPU only, see ``aar.nn.int8``).

        Args:
            reduce_range: 7-bit activations, for CPUs without VNNI instructions.
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

    def unpack(self) -> None:
        """Drop the pack: plain ``F.linear`` arithmetic again."""
        self.packed = None


def _requantize(layer: Linear, incompatible_keys: object) -> None:
    """After ``load_state_dict``: quantize the loaded weight again if the layer runs int8."""
    if layer.int8 is not None:
        layer.quantize(layer.int8.reduce_range, layer.int8.mode == "emulated")
