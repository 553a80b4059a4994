"""Int8 matrix products for the CPU: int8 weights quantized once, activations quantized per call.

Legend: N rows (any leading dims), K input features, M output features.

``Int8Weight`` quantizes a float weight (M, K) once, symmetrically per output channel (one scale per
row, zero point 0, values in [-127, 127]). At every call the float32 input is quantized per tensor
(asymmetric uint8, from its own min and max), multiplied in int8 with int32 accumulation, and handed
back in float32: the residual stream, biases, normalisation and softmax around it stay float32.

The kernel is PyTorch's quantized dynamic linear (``torch.ops.quantized.linear_dynamic`` on weights
prepacked by ``torch.ops.quantized.linear_prepack``, the FBGEMM/oneDNN "x86" engine). It was measured
against torchao's ``Int8DynamicActivationInt8WeightConfig`` in eager mode on the CPU and ran 3–10×
faster there (docs/performance.md). Its weight format needs ``torch.quantize_per_channel``, which
PyTorch marks deprecated: every call to it is in this module, and where it is missing or fails the
layer runs ``EMULATED`` instead: the same int8 rounding of the weight and the input computed in
float32 (correct to the same rounding, slower), said once in the log.

A bias is prepacked with the weight, so the kernel adds it in its float32 output stage instead of
a separate pass over the output; it is packed again (once) when a call brings a different bias.

``reduce_range`` (7-bit activations) avoids int16 saturation in the AVX2 kernels of CPUs without
VNNI dot-product instructions; ``aar.precision`` chooses it from the CPU's instruction set.
"""

from __future__ import annotations

import copy
import logging
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

logger = logging.getLogger(__name__)

#: How an ``Int8Weight`` multiplies: PyTorch's quantized kernel, or float32 emulation of its rounding.
KERNEL, EMULATED = "kernel", "emulated"
_logged: set[str] = set()


def _log_once(key: str, message: str, *args: object) -> None:
    if key not in _logged:
        _logged.add(key)
        logger.warning(message, *args)


def kernel_available() -> bool:
    """Whether this PyTorch build has the quantized dynamic linear kernel and a CPU engine for it."""
    ops = torch.ops.quantized
    engines = torch.backends.quantized.supported_engines
    return (hasattr(ops, "linear_dynamic") and hasattr(ops, "linear_prepack")
            and any(e in engines for e in ("x86", "fbgemm", "onednn", "qnnpack")))


def quantize_weight(weight_MK: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric per-output-channel int8 quantization.

    Args:
        weight_MK: Float weight (M, K).

    Returns:
        ``(q_MK, scale_M)``: int8 values in [-127, 127] and float32 scales, with
        ``q_MK * scale_M[:, None]`` approximating ``weight_MK``. An all-zero row gets scale 1.
    """
    w_MK = weight_MK.detach().float()
    scale_M = w_MK.abs().amax(dim=1) / 127.0
    scale_M = torch.where(scale_M > 0, scale_M, torch.ones_like(scale_M))
    q_MK = torch.round(w_MK / scale_M[:, None]).clamp_(-127, 127).to(torch.int8)
    return q_MK, scale_M


def _quantize_input(x_NK: Tensor, reduce_range: bool) -> Tensor:
    """The dynamic per-tensor uint8 rounding of the kernel, in float32: (N, K) -> (N, K)."""
    qmax = 127 if reduce_range else 255
    lo = torch.clamp(x_NK.min(), max=0.0)
    hi = torch.clamp(x_NK.max(), min=0.0)
    scale = torch.clamp((hi - lo) / qmax, min=torch.finfo(torch.float32).eps)
    zero = torch.clamp(torch.round(-lo / scale), 0, qmax)
    return (torch.clamp(torch.round(x_NK / scale) + zero, 0, qmax) - zero) * scale


def _version(t: Tensor) -> int | None:
    """``t``'s version counter, or None for an inference tensor (it keeps none)."""
    return None if t.is_inference() else t._version


class Int8Weight:
    """A weight (M, K) in int8, quantized once, multiplied against float32 inputs.

    Args:
        weight_MK: The float weight (M, K), on the CPU.
        reduce_range: Quantize activations to 7 bits (for CPUs without VNNI).
        emulate: Use float32 emulation even where the kernel exists (tests and comparisons).

    Attributes:
        source: The float weight this copy was made from (a replaced weight makes it stale).
        mode: ``KERNEL`` or ``EMULATED``.
    """

    def __init__(self, weight_MK: Tensor, reduce_range: bool = False, emulate: bool = False) -> None:
        if weight_MK.device.type != "cpu":
            raise ValueError(f"int8 weights run on the CPU only; this weight is on {weight_MK.device}")
        self.source = weight_MK
        self.out_features = weight_MK.shape[0]
        self.reduce_range = reduce_range
        q_MK, scale_M = quantize_weight(weight_MK)
        self._packed = None
        self._bias_M: Tensor | None = None  # the bias packed with the weight (a float32 copy)
        self._bias_seen: tuple[Tensor, int] | None = None  # the last bias checked, and its version
        if not emulate and kernel_available():
            try:
                self._packed = self._prepack(q_MK, scale_M)
            except RuntimeError as exc:  # e.g. a build whose quantized engine cannot prepack
                _log_once("prepack", "int8 kernel unavailable (%s); int8 runs emulated in float32, "
                          "with the same rounding but slower", exc)
        elif not emulate:
            _log_once("kernel", "this PyTorch build has no quantized dynamic linear kernel; int8 runs "
                      "emulated in float32, with the same rounding but slower")
        self.mode = KERNEL if self._packed is not None else EMULATED
        # Emulation multiplies the dequantized weight; the kernel needs only its prepacked copy.
        self._dequantized_MK = None if self._packed is not None else q_MK.float() * scale_M[:, None]

    @staticmethod
    def _prepack(q_MK: Tensor, scale_M: Tensor) -> object:
        zeros_M = torch.zeros_like(scale_M, dtype=torch.long)
        with warnings.catch_warnings():  # quantized tensor creation is deprecated; see module doc
            warnings.simplefilter("ignore", UserWarning)
            # |w| / scale <= 127, so this rounds to exactly ``q_MK`` (the values emulation uses)
            qweight = torch.quantize_per_channel(q_MK.float() * scale_M[:, None], scale_M.double(),
                                                 zeros_M, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(qweight, None)

    def _pack_bias(self, bias_M: Tensor | None) -> None:
        """Make ``bias_M`` (M,) the bias the kernel adds, packing the weight again if it differs.

        The same tensor as last time, unchanged since (its version counter, which every in-place
        write advances), needs no check; any other bias, and tensors made under
        ``torch.inference_mode`` (which keep no version counter), are compared by value.
        """
        if bias_M is None:
            if self._bias_M is None:
                return
        elif self._bias_seen is not None and self._bias_seen[0] is bias_M \
                and self._bias_seen[1] == _version(bias_M):
            return
        elif self._bias_M is not None and torch.equal(bias_M.detach().float(), self._bias_M):
            self._remember_bias(bias_M)
            return
        qweight, _ = torch.ops.quantized.linear_unpack(self._packed)
        self._bias_M = None if bias_M is None else bias_M.detach().float().clone().contiguous()
        self._remember_bias(bias_M)
        self._packed = torch.ops.quantized.linear_prepack(qweight, self._bias_M)

    def _remember_bias(self, bias_M: Tensor | None) -> None:
        version = None if bias_M is None else _version(bias_M)
        self._bias_seen = None if version is None else (bias_M, version)

    def __call__(self, x_NK: Tensor, bias_M: Tensor | None) -> Tensor:
        """``x_NK @ weight.T + bias`` with int8 products, (..., K) -> (..., M), float32.

        Raises:
            ValueError: ``x_NK`` is not on the CPU.
        """
        if x_NK.device.type != "cpu":
            raise ValueError(f"int8 layers run on the CPU only; the input is on {x_NK.device} "
                             "(load with precision='fp32' or 'bf16' for other devices)")
        if x_NK.dtype != torch.float32:
            x_NK = x_NK.float()
        if self._packed is None:
            return F.linear(_quantize_input(x_NK, self.reduce_range), self._dequantized_MK,
                            None if bias_M is None else bias_M.float())
        self._pack_bias(bias_M)
        # The overload itself: the packet (``torch.ops.quantized.linear_dynamic``) first scans the
        # arguments for tensor subclasses, which cost more than the product at small sizes.
        linear_dynamic = torch.ops.quantized.linear_dynamic.default
        if x_NK.ndim == 1:  # the kernel wants rows; any number of leading dims is fine
            return linear_dynamic(x_NK[None], self._packed, self.reduce_range)[0]
        return linear_dynamic(x_NK, self._packed, self.reduce_range)

    def __deepcopy__(self, memo: dict) -> Int8Weight:
        # Quantize the copied module's weight again (the kernel's packed weights are not copyable).
        return Int8Weight(copy.deepcopy(self.source, memo), self.reduce_range, self.mode == EMULATED)
