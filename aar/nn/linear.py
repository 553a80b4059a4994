"""The transformer's linear layer: ``nn.Linear`` that can take another bias for one call.

Legend: N rows (any leading dims), K input features, M output features.

The attention assembles its qkv bias from two parameters (``CosineSelfAttention.constants``) and
hands it to the product, as the official code does; everything else is ``nn.Linear``, with the same
parameter names (checkpoints load unchanged) and the same arithmetic (``F.linear``). Faster products
(int8, bfloat16) are subclasses that ``aar.precision`` swaps in.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

#: ``bias=OWN_BIAS`` (the default) uses the layer's own bias.
OWN_BIAS = object()


class Linear(nn.Linear):
    """``nn.Linear`` whose ``forward`` may take a bias in place of its own.

    Args:
        in_features: K.
        out_features: M.
        bias: Whether the layer has a bias.
    """

    def forward(self, x_NK: Tensor, bias: Tensor | None | object = OWN_BIAS) -> Tensor:
        """``x_NK @ weight.T + bias``, (..., K) -> (..., M).

        Args:
            x_NK: Input (..., K).
            bias: A bias (M,) to use instead of the layer's own, or None for none.
        """
        return F.linear(x_NK, self.weight, self.bias if bias is OWN_BIAS else bias)
