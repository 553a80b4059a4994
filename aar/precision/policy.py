"""The ``precision=`` of ``from_pretrained``: fp32, bf16, int8, or auto (chosen by the processor).

- ``"fp32"`` (default): float32 everywhere, bit for bit the official code's arithmetic.
- ``"bf16"``: the transformer's matrix weights in bfloat16 (``aar.precision.reduced``), except the head.
- ``"int8"``: the matrix products of the transformer blocks (attention and FFN, 99 % of the work)
  and the AdaLN layers multiply int8 weights, quantized once per output channel at load, with
  activations quantized per row and call (``aar.precision.int8``). The output head, word embedding
  and condition layers stay float32. CPU only.

Both are module swaps applied to the float32 model (``aar.precision.swaps``, which also says which
elementwise passes each fuses).
- ``"auto"``: the fastest of these that meets the accuracy gates of ``tests/test_precision.py`` on
  this processor, from its features alone (``aar.precision.cpu.cpu_features``; the table is in
  ``auto_precision``): no timing, so every process on a machine chooses the same.

Softmax, normalisation, sampling and the guidance mix run in float32 on every path. Accuracy and
speed of each path are measured in docs/performance.md.
"""

from __future__ import annotations

import logging

import torch

from aar.errors import log_once
from aar.precision import cpu
from aar.precision.cpu import CpuFeatures, cpu_features, measured_speedups  # noqa: F401 (the public names)
from aar.precision.int8 import Int8Linear
from aar.precision.reduced import REDUCED_DTYPES, warn_if_slow
from aar.precision.swaps import to_float32, to_int8, to_reduced

logger = logging.getLogger(__name__)

#: The values ``precision=`` accepts.
PRECISIONS = ("fp32", "bf16", "int8", "auto")


def auto_precision(device: torch.device | str | None = None, features: CpuFeatures | None = None) -> str:
    """What ``precision="auto"`` picks for ``device``: a pure function of the device and CPU features.

    ================================================  =======
    CPU                                               auto
    ================================================  =======
    x86 with PyTorch's int8 kernel (AVX2 or AVX-512)  int8 (8-bit activations with VNNI, 7 without)
    no int8 kernel, AMX                               bf16
    no int8 kernel, AVX512-BF16, AMD                  bf16
    anything else (ARM included)                      fp32
    ================================================  =======

    CUDA: bf16 where the GPU supports it (int8 is CPU-only), else fp32. Other devices: fp32.
    """
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if device.type != "cpu":
        return "fp32"
    features = features or cpu.cpu_features()
    if cpu.int8_is_fast(features):
        return "int8"
    return "bf16" if cpu.bf16_is_fast(features) else "fp32"


def check_precision(precision: str, dtype: torch.dtype | None) -> None:
    """Refuse an unknown ``precision=``, or one that contradicts ``dtype=`` (generator and tokenizer).

    Raises:
        ValueError: naming the value and what is allowed.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if dtype is not None and dtype != torch.float32 and not (precision == "bf16" and dtype == torch.bfloat16):
        raise ValueError(f"precision={precision!r} sets the weight dtype itself; drop dtype={dtype} "
                         "(dtype=torch.bfloat16 alone means precision='bf16')")


def resolve_precision(precision: str | None, dtype: torch.dtype | None,
                      device: torch.device | str | None = None) -> str | None:
    """Check ``precision=`` against ``dtype=`` and resolve ``"auto"``.

    Returns:
        "fp32", "bf16" or "int8"; None where neither was given or only a ``dtype`` other than
        bfloat16 was (that dtype then applies as before).

    Raises:
        ValueError: an unknown precision, one that contradicts ``dtype``, or int8 off the CPU.
    """
    if precision is None:
        return "bf16" if dtype == torch.bfloat16 else None
    check_precision(precision, dtype)
    if precision == "auto":
        precision = auto_precision(device)
        log_once(logger, logging.INFO, f"auto {precision}", "precision='auto' chose %r on this processor",
                 precision)
    if precision == "int8" and torch.device(device or "cpu").type != "cpu":
        raise ValueError(f"precision='int8' runs on the CPU only, got device={device}; use 'bf16' or 'auto'")
    return precision


def tokenizer_dtype(precision: str | None, dtype: torch.dtype | None) -> torch.dtype | None:
    """The parameter dtype of ``SATTokenizer.from_pretrained(precision=..., dtype=...)``.

    "fp32" and "auto" keep float32: ``encode``'s codes stay those of float32, and bfloat16 decoding
    was not faster on the CPUs measured (docs/performance.md). "bf16" is all-bfloat16 parameters.
    The tokenizer is convolutional and has no int8 path.

    Raises:
        ValueError: an unknown precision, "int8", or one that contradicts ``dtype``.
    """
    if precision is None:
        return dtype
    if precision == "int8":
        raise ValueError("precision='int8' applies to the generator's transformer; the tokenizer takes "
                         "'fp32', 'bf16' or 'auto' (which keeps float32)")
    check_precision(precision, dtype)
    return torch.bfloat16 if precision == "bf16" else dtype


def apply_precision(generator, precision: str, *, emulate: bool = False):
    """Put ``generator`` (an ``AARGenerator``) in ``precision``, in place, from any earlier one.

    Args:
        generator: The generator; its tokenizer is left as it is.
        precision: One of ``PRECISIONS``.
        emulate: int8 only: emulate the int8 rounding in float32 instead of running the kernel.

    Returns:
        ``generator``.

    Raises:
        ValueError: an unknown precision, or int8 off the CPU.
    """
    precision = resolve_precision(precision, None, generator.device)
    if precision == "bf16":
        return set_weight_dtype(generator, torch.bfloat16)
    to_float32(generator.transformer)
    if precision == "int8":
        features = cpu.cpu_features()
        if not emulate and features.int8_kernel and not cpu.int8_is_fast(features):
            log_once(logger, logging.WARNING, "int8 slow", "int8 products were not measured faster than "
                     "float32 on this CPU (%s); precision='auto' would not choose int8 "
                     "(docs/performance.md)", features.capability)
        to_int8(generator.transformer, reduce_range=features.int8_saturates, emulate=emulate)
    return generator


def set_weight_dtype(generator, dtype: torch.dtype | None):
    """The ``dtype=`` of ``AARGenerator.from_pretrained``, in place.

    bfloat16 and float16 are the reduced-precision path: the matrix weights but the head's take the
    dtype (``aar.precision.swaps.to_reduced``) and the activations stay float32. float32 and float64
    are the whole transformer's dtype; None changes nothing. The tokenizer is left as it is.

    Returns:
        ``generator``.
    """
    if dtype is None:
        return generator
    if dtype in REDUCED_DTYPES:
        to_reduced(generator.transformer, dtype)
        warn_if_slow(dtype, generator.device)
    else:
        to_float32(generator.transformer).to(dtype)
    return generator


def precision_of(generator) -> str:
    """The precision ``generator`` runs in: "int8", "bf16" or "fp32" (also for float16/64 weights)."""
    if any(isinstance(m, Int8Linear) and m.int8.source is m.weight for m in generator.transformer.modules()):
        return "int8"
    return "bf16" if generator.dtype == torch.bfloat16 else "fp32"
