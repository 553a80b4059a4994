"""1-D convolutions with the non-causal, reflect-padded framing of SEANet codecs.

Legend: B batch, C channels, T time steps (samples or frames).

The weights are plain ``Conv1d`` / ``ConvTranspose1d`` weights: the weight normalisation of the official
checkpoints is folded in once, at conversion time (``aar.loading.official``), which computes the
same tensor the official forward pass recomputes on every call.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def extra_padding(length: int, kernel_size: int, stride: int, padding_total: int) -> int:
    """Right padding that makes the last frame complete, so no input sample is dropped.

    Args:
        length: Input length T.
        kernel_size: Effective kernel size ``(k - 1) * dilation + 1``.
        stride: Convolution stride.
        padding_total: Padding already planned, ``kernel_size - stride``.

    Returns:
        The number of samples to add on the right on top of ``padding_total // 2``.
    """
    frames = (length - kernel_size + padding_total) / stride + 1
    ideal = (math.ceil(frames) - 1) * stride + kernel_size - padding_total
    return ideal - length


def reflect_pad(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Reflect-pad the last axis, even when it is shorter than the padding.

    Reflection needs more samples than the pad; a short input is first extended with zeros, which are
    removed again after padding, so the result has exactly ``T + left + right`` samples.
    """
    length = x.shape[-1]
    widest = max(left, right)
    zeros = widest - length + 1 if length <= widest else 0
    if zeros:
        x = F.pad(x, (0, zeros))
    x = F.pad(x, (left, right), mode="reflect")
    return x[..., : x.shape[-1] - zeros]


class PaddedConv1d(nn.Conv1d):
    """``Conv1d`` that pads its input so the output has ``ceil(T / stride)`` frames, centred."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, T) -> (B, C_out, T')
        kernel = (self.kernel_size[0] - 1) * self.dilation[0] + 1
        stride = self.stride[0]
        padding_total = kernel - stride
        extra = extra_padding(x.shape[-1], kernel, stride, padding_total)
        right = padding_total // 2
        x = reflect_pad(x, padding_total - right, right + extra)
        return super().forward(x)


class TrimmedConvTranspose1d(nn.ConvTranspose1d):
    """``ConvTranspose1d`` whose output is trimmed back to exactly ``T * stride`` samples."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, T) -> (B, C_out, T * stride)
        y = super().forward(x)
        padding_total = self.kernel_size[0] - self.stride[0]
        right = padding_total // 2
        left = padding_total - right
        return y[..., left : y.shape[-1] - right]
