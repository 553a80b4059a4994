"""Int8 matrix products for the CPU: int8 weights quantized once, activations quantized per row.

Legend: N rows (any leading dims), K input features, M output features.

``Int8Weight`` quantizes a float weight (M, K) once, symmetrically per output channel (one scale per
row, zero point 0, values in [-127, 127]). At every call each row of the float32 input is quantized
on its own scale (its largest magnitude), multiplied in int8 with int32 accumulation, and handed back
in float32: the residual stream, biases, normalisation and softmax around it stay float32. A row's
result depends on that row alone, so a batch computes what its rows compute one by one.

The kernel is PyTorch's quantized dynamic linear (``torch.ops.quantized.linear_dynamic`` on weights
prepacked by ``torch.ops.quantized.linear_prepack``, the FBGEMM "x86" engine), which quantizes its
input per tensor, from the tensor's min and max. Per-row scales are given to it by dividing each row
by its largest magnitude and appending two anchor rows holding +1 and -1: every call then quantizes
on the fixed range [-1, 1], whatever the batch, and the row's magnitude multiplies the result
afterwards (with the bias, in one ``addcmul``).

Its weight format needs ``torch.quantize_per_channel``, which PyTorch marks deprecated: every call to
it is in this module, and where it is missing or fails the layer runs ``EMULATED`` instead: the same
rounding, with the integer sums computed exactly in float64 (slower), said once in the log.

Saturation. x86 CPUs without VNNI dot-product instructions (AVX2, and AVX-512 without VNNI) multiply
uint8 activations by int8 weights with ``vpmaddubsw``, which adds each pair of neighbouring products
(features 2j and 2j+1) in a saturating int16: two products of 255 x 127 overflow it. With VNNI the
four products go straight to int32. ``kernel_saturates()`` asks the kernel itself (one tiny product
whose exact sum overflows int16), so the answer follows what this process runs, also where FBGEMM is
told to use fewer instructions (``FBGEMM_ENABLE_INSTRUCTIONS=AVX2``). Where it saturates, activations
get 7 bits (``reduce_range``): a pair then sums to at most 2 x 127 x 127 = 32258, which fits, and the
products are exact again. The emulation models the saturation too, so that it computes what the
kernel computes on every CPU, 8-bit activations on a saturating CPU included.
"""

from __future__ import annotations

import copy
import functools
import logging
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aar.errors import log_once
from aar.nn.linear import OWN_BIAS, Linear

logger = logging.getLogger(__name__)

#: How an ``Int8Weight`` multiplies: PyTorch's quantized kernel, or an emulation of its arithmetic.
KERNEL, EMULATED = "kernel", "emulated"
_INT16 = (-(2**15), 2**15 - 1)


def kernel_available() -> bool:
    """Whether this PyTorch build has the quantized dynamic linear kernel and a CPU engine for it."""
    ops = torch.ops.quantized
    engines = torch.backends.quantized.supported_engines
    return (hasattr(ops, "linear_dynamic") and hasattr(ops, "linear_prepack")
            and any(e in engines for e in ("x86", "fbgemm", "onednn", "qnnpack")))


@functools.cache
def kernel_saturates() -> bool:
    """Whether this process's int8 kernel sums pairs of 8-bit products in a saturating int16.

    One product settles it: activations [1, 1] (uint8 255, 255) against a weight row [1, 1]
    (int8 127, 127) sum to 64770 exactly, and to 32767 where the pair saturates. False where the
    kernel is missing (emulation then has nothing to model) or cannot prepack.
    """
    if not kernel_available():
        return False
    try:
        weight = Int8Weight._prepack(torch.full((1, 2), 127, dtype=torch.int8), torch.ones(1) / 127)
        out = torch.ops.quantized.linear_dynamic(torch.ones(1, 2), weight, False)
    except RuntimeError:
        return False
    return float(out) < 1.5  # exact: 2.0; saturated: 32767 / 255 / 127 = 1.01


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


def row_scales(x_NK: Tensor) -> Tensor:
    """Each row's largest magnitude (1 for an all-zero row): (N, K) -> (N, 1)."""
    # abs().amax: 12x faster than vector_norm(inf) on the CPU (150 x 4096: 56 against 798 us)
    scale_N1 = x_NK.abs().amax(dim=1, keepdim=True)
    return scale_N1.masked_fill_(scale_N1 == 0, 1.0)


def quantize_rows(x_NK: Tensor, reduce_range: bool) -> tuple[Tensor, float, int]:
    """The kernel's rounding of rows already divided by their scale (values in [-1, 1]).

    The range [-1, 1] maps onto 255 steps of uint8 (127 with ``reduce_range``) as the kernel's
    dynamic quantization maps a tensor whose min is -1 and max is 1.

    Returns:
        ``(q_NK, step, zero)``: the codes (float32 holding integers), the step between codes and
        the code of 0, so that ``(q_NK - zero) * step`` approximates ``x_NK``.
    """
    qmax = 127 if reduce_range else 255
    step = torch.tensor(2.0) / qmax  # float32, as the kernel computes it
    # The kernel picks the zero point in double precision, 1 / (2 / qmax) = qmax / 2, rounded half to
    # even: 128 (8 bits) or 64 (7 bits). The codes are clamped to uint8 in both cases: with 7 bits,
    # +1 lands on 127 steps above 64. It multiplies by the float32 inverse of the step.
    zero = round(1.0 / (2.0 / qmax))
    q_NK = torch.round(x_NK * (1.0 / step)).add_(zero).clamp_(0, 255)
    return q_NK, float(step), zero


def rounding_bound(x_NK: Tensor, weight_MK: Tensor, reduce_range: bool) -> Tensor:
    """The worst-case |int8 product - exact product| of ``Int8Weight`` without saturation, (N, M).

    Each weight is off by at most half its channel's step, each activation by at most half its row's
    step, and the integer sums are exact; 1e-5 of the magnitudes (and 1e-6) covers float32 rounding.
    It holds on every CPU class for the default width (7 bits where the kernel would saturate 8).

    Args:
        x_NK: Input rows (N, K).
        weight_MK: The float weight (M, K).
        reduce_range: Whether activations get 7 bits.
    """
    x_NK, w_MK = x_NK.detach().float(), weight_MK.detach().float()
    _, step_M = quantize_weight(w_MK)
    step_N1 = x_NK.abs().amax(1, keepdim=True) * (2.0 / (127 if reduce_range else 255))
    return (x_NK.abs().sum(1, keepdim=True) * step_M / 2 + step_N1 / 2 * w_MK.abs().sum(1)
            + step_N1 / 2 * step_M / 2 * x_NK.shape[1] + 1e-5 * (x_NK.abs() @ w_MK.abs().T) + 1e-6)


def _saturated_product(q_NK: Tensor, q_MK: Tensor) -> Tensor:
    """``q_NK @ q_MK.T`` in int64 with each pair of neighbouring products saturated to int16."""
    K = q_NK.shape[1]
    if K % 2:
        q_NK, q_MK = F.pad(q_NK, (0, 1)), F.pad(q_MK, (0, 1))
    q_NK, q_MK = q_NK.long(), q_MK.long()
    chunk = max(1, 2**22 // max(1, q_MK.numel()))  # rows at a time: about 32 MB of int64 products
    out = []
    for rows in q_NK.split(chunk):
        pairs = (rows[:, None, :] * q_MK[None]).view(rows.shape[0], q_MK.shape[0], -1, 2).sum(-1)
        out.append(pairs.clamp_(*_INT16).sum(-1))  # (n, M)
    return torch.cat(out)


class Int8Weight:
    """A weight (M, K) in int8, quantized once, multiplied against float32 inputs row by row.

    Args:
        weight_MK: The float weight (M, K), on the CPU.
        reduce_range: 7-bit activations. None (default): where the kernel saturates
            (``kernel_saturates()``), which keeps the products exact.
        emulate: Use the emulation even where the kernel exists (tests and comparisons).
        saturate: Emulation only: model int16 saturation of pairs of products. None (default): as
            this process's kernel does.

    Attributes:
        source: The float weight this copy was made from (a replaced weight makes it stale).
        mode: ``KERNEL`` or ``EMULATED``.
        reduce_range: Whether activations get 7 bits.
    """

    def __init__(self, weight_MK: Tensor, reduce_range: bool | None = None, emulate: bool = False,
                 saturate: bool | None = None) -> None:
        if weight_MK.device.type != "cpu":
            raise ValueError(f"int8 weights run on the CPU only; this weight is on {weight_MK.device}")
        self.source = weight_MK
        self.out_features, self.in_features = weight_MK.shape
        self.reduce_range = kernel_saturates() if reduce_range is None else bool(reduce_range)
        q_MK, scale_M = quantize_weight(weight_MK)
        self._packed = None
        if not emulate and kernel_available():
            try:
                self._packed = self._prepack(q_MK, scale_M)
            except RuntimeError as exc:  # e.g. a build whose quantized engine cannot prepack
                log_once(logger, logging.WARNING, "prepack", "int8 kernel unavailable (%s); int8 runs "
                         "emulated, with the same rounding but slower", exc)
        elif not emulate:
            log_once(logger, logging.WARNING, "kernel", "this PyTorch build has no quantized dynamic "
                     "linear kernel; int8 runs emulated, with the same rounding but slower")
        self.mode = KERNEL if self._packed is not None else EMULATED
        self.saturate = kernel_saturates() if saturate is None else bool(saturate)
        self._codes_MK = None if self._packed is not None else q_MK  # what emulation multiplies
        self._scale_M = scale_M
        self._anchors_2K = torch.zeros(2, self.in_features)
        self._anchors_2K[0, 0], self._anchors_2K[1, 0] = 1.0, -1.0

    @staticmethod
    def _prepack(q_MK: Tensor, scale_M: Tensor) -> object:
        zeros_M = torch.zeros_like(scale_M, dtype=torch.long)
        with warnings.catch_warnings():  # quantized tensor creation is deprecated; see module doc
            warnings.simplefilter("ignore", UserWarning)
            # |w| / scale <= 127, so this rounds to exactly ``q_MK`` (the values emulation uses)
            qweight = torch.quantize_per_channel(q_MK.float() * scale_M[:, None], scale_M.double(),
                                                 zeros_M, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(qweight, None)

    def __call__(self, x_NK: Tensor, bias_M: Tensor | None) -> Tensor:
        """``x_NK @ weight.T + bias`` with int8 products, (..., K) -> (..., M), float32.

        Raises:
            ValueError: ``x_NK`` is not on the CPU, or its last dimension is not K.
        """
        if x_NK.device.type != "cpu":
            raise ValueError(f"int8 layers run on the CPU only; the input is on {x_NK.device} "
                             "(load with precision='fp32' or 'bf16' for other devices)")
        if x_NK.shape[-1] != self.in_features:
            raise ValueError(f"input has {x_NK.shape[-1]} features, the weight takes {self.in_features}")
        lead = x_NK.shape[:-1]
        x_NK = x_NK.reshape(-1, self.in_features)
        if x_NK.dtype != torch.float32:
            x_NK = x_NK.float()
        scale_N1 = row_scales(x_NK)
        N = x_NK.shape[0]
        if self._packed is None:
            y_NM = self._emulate(x_NK / scale_N1)
        else:
            unit_NK = x_NK.new_empty(N + 2, self.in_features)
            torch.div(x_NK, scale_N1, out=unit_NK[:N])
            unit_NK[N:].copy_(self._anchors_2K)  # the range is [-1, 1] whatever the rows
            # The overload itself: the packet (``torch.ops.quantized.linear_dynamic``) first scans the
            # arguments for tensor subclasses, which cost more than the product at small sizes.
            y_NM = torch.ops.quantized.linear_dynamic.default(unit_NK, self._packed, self.reduce_range)[:N]
        if bias_M is None:
            out_NM = y_NM.mul_(scale_N1) if y_NM.is_contiguous() else y_NM * scale_N1
        else:
            out_NM = torch.addcmul(bias_M.detach().float(), y_NM, scale_N1)
        return out_NM.view(*lead, self.out_features)

    def _emulate(self, unit_NK: Tensor) -> Tensor:
        """The kernel's product of rows in [-1, 1]: (N, K) -> (N, M), float32.

        The integer sums are exact (float64 holds them), so, as in the kernel, a row's result does
        not depend on how many rows come with it.
        """
        q_NK, step, zero = quantize_rows(unit_NK, self.reduce_range)
        q_MK = self._codes_MK
        if self.saturate and not self.reduce_range:  # 7-bit pairs cannot saturate
            acc_NM = (_saturated_product(q_NK, q_MK) - zero * q_MK.long().sum(1)).double()
        else:
            acc_NM = (q_NK.double() - zero) @ q_MK.double().T
        return (acc_NM * (step * self._scale_M.double())).float()

    def __deepcopy__(self, memo: dict) -> Int8Weight:
        # Quantize the copied module's weight again (the kernel's packed weights are not copyable).
        return Int8Weight(copy.deepcopy(self.source, memo), self.reduce_range, self.mode == EMULATED,
                          self.saturate)


class Int8Linear(Linear):
    """A ``Linear`` that multiplies through an int8 copy of its weight (CPU only).

    ``aar.precision.swaps`` swaps it in for a float layer with :meth:`from_float`. The float weight
    and bias stay its parameters, shared with the layer it replaced, so ``state_dict`` and saving are
    unchanged; ``load_state_dict`` quantizes the loaded weight again. A weight replaced by other means
    (``.to(dtype)``) makes the copy stale: the layer then multiplies its float weight, said once in the
    log; after in-place writes (``nn.init``, optimisers) call :meth:`requantize`.

    Attributes:
        int8: The ``Int8Weight`` in use.
    """

    int8: Int8Weight

    @classmethod
    def from_float(cls, layer: nn.Linear, reduce_range: bool | None = None, emulate: bool = False
                   ) -> Int8Linear:
        """An int8 layer sharing ``layer``'s parameters.

        Args:
            layer: The float layer, on the CPU.
            reduce_range: 7-bit activations. None (default): where the kernel would saturate 8-bit
                ones (CPUs without VNNI, :func:`kernel_saturates`).
            emulate: Float32 emulation of the int8 rounding instead of the kernel.

        Raises:
            ValueError: the weight is not on the CPU.
        """
        quantized = cls.__new__(cls)
        nn.Module.__init__(quantized)
        quantized.in_features, quantized.out_features = layer.in_features, layer.out_features
        quantized.register_parameter("weight", layer.weight)
        quantized.register_parameter("bias", layer.bias)
        quantized.int8 = Int8Weight(layer.weight, reduce_range, emulate)
        quantized.register_load_state_dict_post_hook(_requantize)
        return quantized

    def requantize(self) -> None:
        """Quantize the current weight again (after it was changed in place)."""
        self.int8 = Int8Weight(self.weight, self.int8.reduce_range, self.int8.mode == EMULATED)

    def to_float(self) -> Linear:
        """The float ``Linear`` with this layer's parameters."""
        layer = Linear.__new__(Linear)
        nn.Module.__init__(layer)
        layer.in_features, layer.out_features = self.in_features, self.out_features
        layer.register_parameter("weight", self.weight)
        layer.register_parameter("bias", self.bias)
        return layer

    def forward(self, x_NK: Tensor, bias: Tensor | None | object = OWN_BIAS, groups: int = 1) -> Tensor:
        """``x_NK @ weight.T + bias`` with int8 products, (..., K) -> (..., M), float32.

        One product serves every request of the batch (``groups`` is not needed): its integer sums
        are exact and each row is scaled on its own, so a row's result is the same in any batch.
        """
        bias_M = self.bias if bias is OWN_BIAS else bias
        if self.int8.source is self.weight:
            return self.int8(x_NK, bias_M)
        log_once(logger, logging.WARNING, "stale", "the weight of an int8 layer was replaced; the layer "
                 "multiplies its new weight unquantized (call requantize() to quantize it)")
        return super().forward(x_NK, bias_M, groups)


def _requantize(layer: Int8Linear, incompatible_keys: object) -> None:
    """After ``load_state_dict``: quantize the loaded weight again."""
    layer.requantize()
