"""The transformer's linear layer: reduced-precision or int8 weights around a float32 stream.

Legend: N rows (any leading dims), K input features, M output features.

``Linear`` is ``nn.Linear`` with two additions, and the same parameter names (checkpoints load
unchanged):

- its weight may be bfloat16 or float16 while activations stay float32 (``aar.precision.reduced``);
- ``quantize()`` adds an int8 copy of the weight (``aar.precision.int8``) that every product then uses (on
  the CPU); the float weight stays the parameter (``state_dict`` and saving are unchanged). The copy
  follows ``load_state_dict`` and is dropped (logged) when the weight is replaced (``.to(dtype)``);
  after in-place writes (``nn.init``, optimisers) call ``quantize()`` again.

With a float32 weight and no int8 copy, ``forward`` is ``F.linear``: bit for bit the official
arithmetic.
"""

from __future__ import annotations

import logging

from torch import Tensor, nn

from aar.precision.int8 import Int8Weight
from aar.precision.reduced import linear

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
        return linear(x_NK, self.weight, bias_M)

    def quantize(self, reduce_range: bool | None = None, emulate: bool = False) -> None:
        """Multiply through an int8 copy of the weight from now on (CPU only, see ``aar.precision.int8``).

        Args:
            reduce_range: 7-bit activations. None (default): where the kernel would saturate 8-bit
                ones (CPUs without VNNI, ``aar.precision.int8.kernel_saturates``).
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


def _requantize(layer: Linear, incompatible_keys: object) -> None:
    """After ``load_state_dict``: quantize the loaded weight again if the layer runs int8."""
    if layer.int8 is not None:
        layer.quantize(layer.int8.reduce_range, layer.int8.mode == "emulated")
