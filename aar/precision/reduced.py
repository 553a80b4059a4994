"""Reduced-precision inference: bfloat16 (or float16) matrix weights around a float32 residual stream.

Legend: N rows (any leading dims), K input features, M output features.

``ReducedLinear`` takes the place of a transformer's ``Linear`` (``aar.precision.swaps`` swaps it in):
its weight has the low-precision dtype, each product reads its input cast to that dtype and hands
back the input's dtype, so everything between the products (the residual stream, biases, LayerNorm
statistics, the attention softmax) stays float32. The generator keeps its output head a plain
float32 ``Linear``: logits reach ~12, where a bfloat16 step is 1/16. Accuracy against float32 is
measured in docs/performance.md; ``aar.precision.policy`` chooses between this path, int8
(``aar.precision.int8``) and float32.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aar.errors import log_once
from aar.nn.linear import OWN_BIAS, Linear, by_request
from aar.precision import cpu

logger = logging.getLogger(__name__)

#: Weight dtypes that run as "low-precision weights, float32 activations".
REDUCED_DTYPES = (torch.bfloat16, torch.float16)
#: ``torch.cpu`` probe of the matrix units that make each reduced dtype fast on a CPU (Intel AMX).
_CPU_MATRIX_PROBES = {torch.bfloat16: "_is_amx_tile_supported", torch.float16: "_is_amx_fp16_supported"}


def linear(x_NK: Tensor, weight_MK: Tensor, bias_M: Tensor | None = None) -> Tensor:
    """``F.linear`` run in the weight's dtype, returned in the input's dtype.

    Args:
        x_NK: Input (..., K), float32 in the reduced-precision path.
        weight_MK: Weight (M, K), possibly bfloat16 or float16.
        bias_M: Bias (M,) or None, added in the input's dtype.

    Returns:
        (..., M) in ``x_NK``'s dtype. Equal dtypes run plain ``F.linear``.
    """
    if x_NK.dtype == weight_MK.dtype:
        return F.linear(x_NK, weight_MK, bias_M)
    y_NM = F.linear(x_NK.to(weight_MK.dtype), weight_MK).to(x_NK.dtype)
    return y_NM if bias_M is None else y_NM + bias_M.to(x_NK.dtype)


class ReducedLinear(Linear):
    """A ``Linear`` whose weight is bfloat16 or float16 while its input, bias and output keep their
    dtype. Made from a float layer with :meth:`from_float`; parameter names are those of
    ``nn.Linear``, so ``state_dict`` and loading are unchanged (loaded weights are cast)."""

    @classmethod
    def from_float(cls, layer: nn.Linear, dtype: torch.dtype) -> ReducedLinear:
        """A copy of ``layer`` with its weight in ``dtype`` (one of ``REDUCED_DTYPES``); the bias is
        shared."""
        if dtype not in REDUCED_DTYPES:
            raise ValueError(f"reduced-precision weights are {list(REDUCED_DTYPES)}, got {dtype}")
        reduced = cls.__new__(cls)
        nn.Module.__init__(reduced)
        reduced.in_features, reduced.out_features = layer.in_features, layer.out_features
        weight = layer.weight.detach().to(dtype)
        reduced.weight = nn.Parameter(weight, requires_grad=layer.weight.requires_grad)
        reduced.register_parameter("bias", layer.bias)
        return reduced

    def forward(self, x_NK: Tensor, bias: Tensor | None | object = OWN_BIAS, groups: int = 1) -> Tensor:
        """``x_NK @ weight.T + bias`` with the product in the weight's dtype, (..., K) -> (..., M);
        ``groups`` requests multiplied apart (``aar.nn.linear``)."""
        bias_M = self.bias if bias is OWN_BIAS else bias
        return by_request(lambda x: linear(x, self.weight, bias_M), x_NK, groups, (self.weight, bias_M))


def cpu_has_matrix_units(dtype: torch.dtype) -> bool:
    """Whether this CPU multiplies ``dtype`` matrices on dedicated units (AMX), as oneDNN sees it.

    Without them (AVX-512 alone, even with its bfloat16 dot products) a bfloat16 matrix product is
    slower than a float32 one in PyTorch's CPU kernels.
    """
    probe = getattr(torch.cpu, _CPU_MATRIX_PROBES.get(dtype, ""), None)
    return bool(torch.backends.mkldnn.is_available() and probe is not None and probe())


def runs_fast(dtype: torch.dtype) -> bool:
    """Whether ``dtype`` matrix products beat float32 on this CPU.

    bfloat16: decided by ``aar.precision.cpu.bf16_is_fast`` (AMX, or AVX512-BF16 on an AMD processor);
    float16: AMX-FP16 units only.
    """
    if dtype == torch.bfloat16:
        return cpu.bf16_is_fast()
    return cpu_has_matrix_units(dtype)


def warn_if_slow(dtype: torch.dtype | None, device: torch.device | str | None) -> None:
    """Log once per dtype when reduced-precision weights will run slower than float32 on this CPU."""
    if dtype not in REDUCED_DTYPES or torch.device(device or "cpu").type != "cpu" or runs_fast(dtype):
        return
    log_once(logger, logging.WARNING, f"slow {dtype}",
             "%s matrix products are no faster than float32 on this CPU (no AMX, and no bfloat16 dot "
             "products or not on an AMD processor), so %s generation is slower than float32 here "
             "(see docs/performance.md)", dtype, dtype)
