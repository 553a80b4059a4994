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
rows that are not 16-byte aligned differently again. ``forward(x, groups=G)`` therefore gives each of
G equal runs of consecutive rows the numbers it gets multiplied alone, from aligned memory, so a
request gets the same numbers alone or in a batch.

Multiplying the requests one by one costs what batching saves (float32 at batch 4: 20 to 35 % more
time, docs/performance.md), and most products do not need it: above a few rows a kernel rounds a row
the same whatever the rows around it. So the first time a product of a given kind runs (the operation,
its operands' shapes, strides, dtypes, devices and 64-byte alignment, and the thread count), it is
tried both ways on random values of that kind; where every request got its own bits from one product
over the whole batch, that product serves every later call of the kind (``_SHARED``). A kernel
chooses its blocking from those properties, never from the values, so one agreement stands for every
input. The record lives in the process and never changes a result: both ways give the same bits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: ``bias=OWN_BIAS`` (the default) uses the layer's own bias.
OWN_BIAS = object()

#: For each kind of product (``_kind``): whether one product over the whole batch gives every request
#: the bits it gets alone (module docstring). Filled by ``by_request``.
_SHARED: dict[tuple, bool] = {}


def by_request(product, x_NK: Tensor, groups: int, operands: tuple[Tensor | None, ...] = ()) -> Tensor:
    """``product(x)`` of each of ``groups`` equal runs of consecutive rows of ``x_NK`` as if alone.

    Args:
        product: The operation, ``x -> y`` along the first dimension (a row's output depends on its
            own row only).
        x_NK: Input; its first dimension holds the G requests one after another.
        groups: G, the number of independent requests.
        operands: The tensors ``product`` reads besides ``x`` (weight, bias). Given, the first call of
            a kind of product checks whether one product over the whole batch keeps every request's
            bits, and later calls of that kind run it so (module docstring); empty, the requests are
            always multiplied one by one.

    Raises:
        ValueError: the rows do not split into ``groups`` equal runs.
    """
    if groups == 1:
        return product(x_NK)
    if groups < 1 or x_NK.shape[0] % groups:
        raise ValueError(f"{x_NK.shape[0]} rows do not split into groups={groups} equal requests")
    if not operands or x_NK.numel() == 0:
        return _apart(product, x_NK, groups)
    kind = (product.__code__, groups, _kind(x_NK), *map(_kind, operands), torch.get_num_threads())
    shared = _SHARED.get(kind)
    if shared is None:
        probe = _random_like(x_NK)
        shared = _SHARED[kind] = torch.equal(product(probe), _apart(product, probe, groups))
    return product(x_NK) if shared else _apart(product, x_NK, groups)


def _apart(product, x_NK: Tensor, groups: int) -> Tensor:
    return torch.cat([product(aligned(x_gNK)) for x_gNK in x_NK.chunk(groups)])


def _kind(x: Tensor | None) -> tuple | None:
    """What a kernel may choose its blocking by: shape, strides, dtype, device, 64-byte alignment."""
    if x is None:
        return None
    return tuple(x.shape), x.stride(), x.dtype, x.device, x.data_ptr() % 64


def _random_like(x: Tensor) -> Tensor:
    """Standard normal values with ``x``'s shape, strides, dtype, device and 64-byte alignment.

    They come from a random stream of their own, so probing a product leaves the global one (which a
    caller may have seeded for its own draws) as it was."""
    span = 1 + sum((size - 1) * stride for size, stride in zip(x.shape, x.stride()))
    step = 64 // x.element_size()
    stream = torch.Generator(device=x.device).manual_seed(0)
    buffer = torch.randn(span + step, dtype=x.dtype, device=x.device, generator=stream)
    shift = (x.data_ptr() - buffer.data_ptr()) % 64 // x.element_size()
    return buffer.as_strided(x.shape, x.stride(), shift)


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
                first dimension, each given the numbers it gets alone (module docstring).
        """
        bias_M = self.bias if bias is OWN_BIAS else bias
        return by_request(lambda x: F.linear(x, self.weight, bias_M), x_NK, groups, (self.weight, bias_M))
