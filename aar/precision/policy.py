"""The ``precision=`` of ``from_pretrained``: fp32, bf16, int8, or auto (chosen by the processor).

- ``"fp32"`` (default): float32 everywhere, bit for bit the official code's arithmetic.
- ``"bf16"``: the transformer's matrix weights in bfloat16 (``aar.precision.reduced``), except the head.
- ``"int8"``: the matrix products of the transformer blocks (attention and FFN, 99 % of the work)
  and the AdaLN layers multiply int8 weights, quantized once per output channel at load, with
  activations quantized per call (``aar.precision.int8``). AdaLN runs once per generation but reads 100 M
  weights to do so: int8 reads a quarter of the bytes (about 60 -> 9 ms on one core) and moved the
  gates of ``tests/test_precision.py`` by less than 1 %. The output head (it sets the logits; int8
  there raised the fixture's KL tenfold), word embedding and condition layers stay float32. The
  FFN's GELU is the erf form there (``aar.nn.block.FeedForward``). CPU only.
- ``"auto"``: the fastest of these that meets the accuracy gates of ``tests/test_precision.py`` on
  this processor, from its features alone (``aar.precision.cpu.cpu_features``; the table is in
  ``auto_precision``): no timing, so every process on a machine chooses the same.

Softmax, normalisation, sampling and the guidance mix run in float32 on every path. Accuracy and
speed of each path are measured in docs/performance.md.
"""

from __future__ import annotations

import logging

import torch

from aar.nn.linear import Linear
from aar.precision import cpu
from aar.precision.cpu import CpuFeatures, cpu_features, measured_speedups  # noqa: F401 (the public names)

logger = logging.getLogger(__name__)

#: The values ``precision=`` accepts.
PRECISIONS = ("fp32", "bf16", "int8", "auto")
_logged: set[str] = set()


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
        _log_once(f"auto {precision}", "precision='auto' chose %r on this processor", precision)
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


def int8_layers(transformer: torch.nn.Module) -> list[Linear]:
    """The layers ``precision="int8"`` quantizes: attention, FFN and AdaLN of every block, and the
    head's AdaLN."""
    layers = [layer for block in transformer.blocks
              for layer in (block.attn.mat_qkv, block.attn.proj, block.ffn.fc1, block.ffn.fc2,
                            block.ada_lin[1])]
    return [*layers, transformer.head_nm.ada_lin[1]]


def apply_precision(generator, precision: str, *, emulate: bool = False):
    """Put ``generator`` (an ``AARGenerator``, in float32) in ``precision``, in place.

    Args:
        generator: The generator; its tokenizer stays float32.
        precision: One of ``PRECISIONS``.
        emulate: int8 only: emulate the int8 rounding in float32 instead of running the kernel.

    Returns:
        ``generator``.

    Raises:
        ValueError: an unknown precision, or int8 off the CPU.
    """
    precision = resolve_precision(precision, None, generator.device)
    for layer in int8_layers(generator.transformer):
        layer.dequantize()
    if precision == "bf16":
        return generator.to(dtype=torch.bfloat16)
    if generator.dtype != torch.float32:
        generator.to(dtype=torch.float32)
    if precision == "fp32":
        return generator
    features = cpu.cpu_features()
    if not emulate and features.int8_kernel and not cpu.int8_is_fast(features):
        _log_once("int8 slow", "int8 products were not measured faster than float32 on this CPU (%s); "
                  "precision='auto' would not choose int8 (docs/performance.md)", features.capability)
    for layer in int8_layers(generator.transformer):
        layer.quantize(reduce_range=features.int8_saturates, emulate=emulate)
    return generator


def precision_of(generator) -> str:
    """The precision ``generator`` runs in: "int8", "bf16" or "fp32" (also for float16/64 weights)."""
    if any(layer.int8 is not None for layer in int8_layers(generator.transformer)):
        return "int8"
    return "bf16" if generator.dtype == torch.bfloat16 else "fp32"


def _log_once(key: str, message: str, *args: object) -> None:
    if key not in _logged:
        _logged.add(key)
        logger.warning(message, *args) if "slow" in key else logger.info(message, *args)
