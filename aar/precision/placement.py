"""Where the generator's weights live and in which dtype: one rule for every way of casting it.

``nn.Module`` offers two roads to a dtype: ``to(dtype=...)`` and the shorthands ``float()``,
``half()``, ``bfloat16()`` and ``double()``, which bypass ``to``. ``GeneratorPlacement`` sends both
through the same rule, the reduced-precision policy of ``aar.precision.reduced``: the transformer's matrix
weights take the dtype; its output head, biases, embeddings, position tables and norms stay in the
float32 stream (float64 for ``double()``); softmax and sampling run in float32; the tokenizer keeps its
own dtype and moves with the device only.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import torch

from aar.precision.reduced import cast_matrix_weights, warn_if_slow

logger = logging.getLogger(__name__)

#: The positional parameters of each form of ``nn.Module.to``, picked by the first argument.
_TO_FORMS = {
    "device": ("device", "dtype", "non_blocking"),
    "dtype": ("dtype", "non_blocking"),
    "tensor": ("tensor", "non_blocking"),
}
_TO_SIGNATURES = ("to(device=None, dtype=None, non_blocking=False, *, memory_format=None), "
                  "to(dtype, non_blocking=False, *, memory_format=None) or "
                  "to(tensor, non_blocking=False, *, memory_format=None)")


class ToArguments(NamedTuple):
    """The meaning of a call to ``to(...)``: where to, in which dtype, and how.

    Attributes:
        device: The target device, or None to stay.
        dtype: The target dtype, or None to keep it.
        non_blocking: Whether host-device copies may run asynchronously.
        memory_format: The memory format asked for, or None.
    """

    device: torch.device | None
    dtype: torch.dtype | None
    non_blocking: bool
    memory_format: torch.memory_format | None


def to_arguments(*args: Any, **kwargs: Any) -> ToArguments:
    """Read the arguments of ``to`` in every form ``nn.Module.to`` accepts, with public API only.

    The forms are ``to(device=None, dtype=None, non_blocking=False)``, ``to(dtype, non_blocking=False)``
    and ``to(tensor, non_blocking=False)`` (the tensor's device and dtype), positional or by keyword,
    each with a keyword-only ``memory_format``. A device may be a ``torch.device``, a name such as
    ``"cuda:0"`` or an index.

    Raises:
        TypeError: a form ``nn.Module.to`` does not accept (naming what was received).

    Example:
        >>> to_arguments("cpu", torch.bfloat16)
        ToArguments(device=device(type='cpu'), dtype=torch.bfloat16, non_blocking=False, memory_format=None)
        >>> to_arguments(torch.zeros(1, dtype=torch.float64), non_blocking=True).dtype
        torch.float64
    """
    first = args[0] if args else None
    if isinstance(first, torch.Tensor) or (not args and "tensor" in kwargs):
        form = "tensor"
    elif isinstance(first, torch.dtype):
        form = "dtype"
    else:
        form = "device"
    names = _TO_FORMS[form]
    received = f"to(*{args!r}, **{kwargs!r})"
    if len(args) > len(names):
        raise TypeError(f"{received}: too many positional arguments; the forms are {_TO_SIGNATURES}")
    bound = dict(zip(names, args))
    for key, value in kwargs.items():
        if key not in names and key != "memory_format":
            raise TypeError(f"{received}: unexpected keyword {key!r}; the forms are {_TO_SIGNATURES}")
        if key in bound:
            raise TypeError(f"{received}: {key!r} given twice; the forms are {_TO_SIGNATURES}")
        bound[key] = value
    device, dtype = bound.get("device"), bound.get("dtype")
    if form == "tensor":
        tensor = bound["tensor"]
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{received}: tensor must be a torch.Tensor, got {type(tensor).__name__}")
        device, dtype = tensor.device, tensor.dtype
    if device is not None:
        if isinstance(device, bool) or not isinstance(device, (torch.device, str, int)):
            raise TypeError(f"{received}: device must be a torch.device, a str or an int, "
                            f"got {type(device).__name__}")
        device = torch.device(device)
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(f"{received}: dtype must be a torch.dtype, got {type(dtype).__name__}")
    non_blocking = bound.get("non_blocking", False)
    if not isinstance(non_blocking, bool):
        raise TypeError(f"{received}: non_blocking must be a bool, got {type(non_blocking).__name__}")
    memory_format = bound.get("memory_format")
    if memory_format is not None and not isinstance(memory_format, torch.memory_format):
        raise TypeError(f"{received}: memory_format must be a torch.memory_format, "
                        f"got {type(memory_format).__name__}")
    return ToArguments(device, dtype, non_blocking, memory_format)


class GeneratorPlacement:
    """Device and dtype methods of ``AARGenerator`` (a mixin over its ``transformer`` and ``tokenizer``).

    The example of :class:`aar.AARGenerator` shows the rule at work: after ``bfloat16()`` the
    transformer's matrix weights are bfloat16, its output head and the tokenizer float32.
    """

    transformer: torch.nn.Module
    tokenizer: torch.nn.Module

    @property
    def precision(self) -> str:
        """The arithmetic the generator runs: "fp32", "bf16" or "int8", whichever way it was set
        (``precision="auto"`` at loading, ``bfloat16()``, ``aar.precision.apply_precision``)."""
        from aar.precision.policy import precision_of

        return precision_of(self)

    @property
    def device(self) -> torch.device:
        """Device of the transformer's weights."""
        return next(self.transformer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the transformer's matrix weights (float32 unless cast, see :meth:`to`)."""
        return self.transformer.word_embed.weight.dtype

    def to(self, *args, **kwargs):
        """``nn.Module.to``, except that a dtype applies to the transformer's matrix weights only.

        ``gen.to(dtype=torch.bfloat16)`` casts the transformer's matrix weights once, except the
        output head; biases, embeddings, the position tables, normalisation, activations, softmax,
        logits and sampling stay float32. The tokenizer (codebooks, phi, decoder) keeps its dtype and
        moves with the device only. ``float()``, ``half()``, ``bfloat16()`` and ``double()`` are
        shorthands for this call. On a CPU without bfloat16 matrix units a one-time log message says
        that bfloat16 runs slower there (docs/performance.md).

        Every form of ``nn.Module.to`` is accepted (see :func:`to_arguments`).

        Returns:
            ``self``.

        Raises:
            TypeError: arguments that ``nn.Module.to`` would refuse too.
        """
        device, dtype, non_blocking, memory_format = to_arguments(*args, **kwargs)
        for child in self.children():
            child.to(device=device, non_blocking=non_blocking, memory_format=memory_format)
        if dtype is not None:
            cast_matrix_weights(self.transformer, dtype, keep=("head",))  # under 1 % of the work
        warn_if_slow(dtype, self.device)
        return self

    def float(self):
        """``to(dtype=torch.float32)``: every weight of the transformer in float32."""
        return self.to(dtype=torch.float32)

    def bfloat16(self):
        """``to(dtype=torch.bfloat16)``: bfloat16 matrix weights around a float32 stream."""
        return self.to(dtype=torch.bfloat16)

    def half(self):
        """``to(dtype=torch.float16)``: float16 matrix weights around a float32 stream."""
        return self.to(dtype=torch.float16)

    def double(self):
        """``to(dtype=torch.float64)``: the whole transformer in float64 (the tokenizer unchanged)."""
        return self.to(dtype=torch.float64)
