"""Reduced-precision inference: bfloat16 (or float16) weights around a float32 residual stream.

Legend: N rows (any leading dims), K input features, M output features.

Only the matrix weights take the low-precision dtype (``cast_matrix_weights``). Each matrix product
reads its input cast to that dtype and hands back float32, so everything between the products (the
residual stream, biases, LayerNorm statistics, the attention softmax) stays float32. The generator
also keeps its output head in float32: logits reach ~12, where a bfloat16 step is 1/16. Accuracy
against float32 is measured in docs/performance.md. ``aar.precision.policy`` chooses between this path,
int8 (``aar.precision.int8``) and float32. With float32 weights nothing is cast: results
are bit for bit those of ``nn.Linear``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aar.precision import cpu

logger = logging.getLogger(__name__)

#: Weight dtypes that run as "low-precision weights, float32 activations".
REDUCED_DTYPES = (torch.bfloat16, torch.float16)
#: ``torch.cpu`` probe of the matrix units that make each reduced dtype fast on a CPU (Intel AMX).
_CPU_MATRIX_PROBES = {torch.bfloat16: "_is_amx_tile_supported", torch.float16: "_is_amx_fp16_supported"}
_warned: set[torch.dtype] = set()


def stream_dtype(weight_dtype: torch.dtype) -> torch.dtype:
    """Dtype of the activations for weights of ``weight_dtype``: float32 unless wider (float64)."""
    return torch.promote_types(weight_dtype, torch.float32)


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


def cast_matrix_weights(
    module: nn.Module, dtype: torch.dtype, keep: Collection[str] = ()
) -> nn.Module:
    """Give the weight of every ``nn.Linear`` in ``module`` the dtype ``dtype``, in place.

    Everything else that is floating point (biases, embeddings, attention temperatures, buffers)
    takes ``stream_dtype(dtype)``: those tensors are small, and rounding them to bfloat16 costs more
    accuracy than it saves time. ``dtype=torch.float32`` makes the whole module float32.

    Args:
        module: Changed in place.
        dtype: Dtype of the matrix weights.
        keep: Names (as in ``module.named_modules()``) of linear layers that stay in the stream
            dtype too, e.g. an output head whose bfloat16 outputs would be too coarse.

    Returns:
        ``module``.
    """
    module.to(stream_dtype(dtype))
    for name, layer in module.named_modules():
        if isinstance(layer, nn.Linear) and name not in keep:
            weight = layer.weight
            layer.weight = nn.Parameter(weight.detach().to(dtype), requires_grad=weight.requires_grad)
    return module


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
    if dtype not in REDUCED_DTYPES or torch.device(device or "cpu").type != "cpu" or dtype in _warned:
        return
    _warned.add(dtype)
    if not runs_fast(dtype):
        logger.warning(
            "%s matrix products are no faster than float32 on this CPU (no AMX, and no bfloat16 "
            "dot products or not on an AMD processor), so %s generation is slower than float32 here "
            "(see docs/performance.md)",
            dtype, dtype,
        )
