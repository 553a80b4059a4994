"""The transformer's linear layer: ``nn.Linear`` that can take another bias for one call, and
multiplies independent requests of a batch apart.

Legend: N rows (any leading dims), K input features, M output features.

The attention assembles its qkv bias from two parameters (``CosineSelfAttention.constants``) and
hands it to the product, as the official code does; everything else is ``nn.Linear``, with the same
parameter names (checkpoints load unchanged) and the same arithmetic (``F.linear``). Faster products
(int8, bfloat16) are subclasses that ``aar.precision`` swaps in.

Batches of independent requests (``groups``). A row of a float product is not rounded the same
whatever the rows around it: BLAS picks its kernel, and with it the order of each row's sums, by the
number of rows. MKL on the AMD EPYC of docs/performance.md rounds a row of a product of 1 to 3 rows
(on 2 threads also 5 to 7 and 9 to 11) differently from the same row in a larger product, and rounds
rows that are not 16-byte aligned differently again. ``forward(x, groups=G)`` therefore multiplies
each of G equal runs of consecutive rows alone, from aligned memory, as that request would be
multiplied without the others, so a request gets the same numbers alone or in a batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: ``bias=OWN_BIAS`` (the default) uses the layer's own bias.
OWN_BIAS = object()


def by_request(product, x_NK: Tensor, groups: int) -> Tensor:
    """``product(x)`` of each of ``groups`` equal runs of consecutive rows of ``x_NK`` alone, joined.

    Raises:
        ValueError: the rows do not split into ``groups`` equal runs.
    """
    if groups == 1:
        return product(x_NK)
    if groups < 1 or x_NK.shape[0] % groups:
        raise ValueError(f"{x_NK.shape[0]} rows do not split into groups={groups} equal requests")
    return torch.cat([product(aligned(x_gNK)) for x_gNK in x_NK.chunk(groups)])


def aligned(x: Tensor) -> Tensor:
    """``x``, copied to fresh memory unless it starts 64-byte aligned, as a tensor of its own does."""
    return x if x.device.type != "cpu" or x.data_ptr() % 64 == 0 else x.clone()


class Linear(nn.Linear):
    """``nn.Linear`` whose ``forward`` may take a bias in place of its own, and requests apart.

    Args:
        in_features: K.
        out_features: M.
        bias: Whether the layer has a bias.
    """

    def forward(self, x_NK: Tensor, bias: Tensor | None | object = OWN_BIAS, groups: int = 1) -> Tensor:
        """``x_NK @ weight.T + bias``, (..., K) -> (..., M).

        Args:
            x_NK: Input (..., K).
            bias: A bias (M,) to use instead of the layer's own, or None for none.
            groups: Independent requests in ``x_NK``, G equal runs of consecutive entries along its
                first dimension, each multiplied alone (module docstring).
        """
        bias_M = self.bias if bias is OWN_BIAS else bias
        return by_request(lambda x: F.linear(x, self.weight, bias_M), x_NK, groups)
