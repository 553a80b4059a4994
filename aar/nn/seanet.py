"""SEANet encoder and decoder: the convolutional halves of the Scale-level Audio Tokenizer.

Legend: B batch, T samples, F latent frames (``T / hop``), D latent ``dimension``, N ``n_filters``.

Both halves are ``nn.Sequential`` stacks whose indices follow the official layout, so a checkpoint key
``encoder.model.12...`` names the same layer here. Parameterless ELUs keep their slots.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import nn

from aar.nn.conv import PaddedConv1d, TrimmedConvTranspose1d


class ResidualUnit(nn.Module):
    """ELU -> conv k (dim -> dim/compress) -> ELU -> conv 1 (-> dim), plus a 1x1-conv shortcut."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, compress: int) -> None:
        super().__init__()
        hidden = dim // compress
        self.block = nn.Sequential(
            nn.ELU(),
            PaddedConv1d(dim, hidden, kernel_size, dilation=dilation),
            nn.ELU(),
            PaddedConv1d(hidden, dim, 1),
        )
        self.shortcut = PaddedConv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, dim, T) -> (B, dim, T)
        return self.shortcut(x) + self.block(x)


class SkipLSTM(nn.Module):
    """LSTM over time with an identity skip: ``y = lstm(x) + x``."""

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C, T)
        x_TBC = x.permute(2, 0, 1)
        y_TBC, _ = self.lstm(x_TBC)
        return (y_TBC + x_TBC).permute(1, 2, 0)


class _SEANet(nn.Module, ABC):
    """The hyperparameters both halves share; each half lays out its ``nn.Sequential`` in ``_layers``.

    Args:
        n_filters: Channels after the encoder's first convolution (before the decoder's last).
        dimension: Channels of the latent.
        ratios: Up-sampling ratios in decoder order; the encoder downsamples by them reversed.
        n_residual_layers: Residual units per stage.
        lstm_layers: Layers of the skip LSTM in the middle; 0 for none.
        kernel_size: Kernel of the first convolution.
        last_kernel_size: Kernel of the last convolution.
        residual_kernel_size: Kernel of a residual unit's first convolution.
        dilation_base: Unit j of a stage has dilation ``dilation_base ** j``.
        compress: Channel reduction inside residual units.
    """

    def __init__(
        self,
        n_filters: int,
        dimension: int,
        ratios: Sequence[int],
        n_residual_layers: int = 1,
        lstm_layers: int = 2,
        kernel_size: int = 7,
        last_kernel_size: int = 7,
        residual_kernel_size: int = 3,
        dilation_base: int = 2,
        compress: int = 2,
    ) -> None:
        super().__init__()
        self.n_filters, self.dimension, self.ratios = n_filters, dimension, tuple(ratios)
        self.lstm_layers, self.kernel_size, self.last_kernel_size = lstm_layers, kernel_size, last_kernel_size
        self._units = (n_residual_layers, residual_kernel_size, dilation_base, compress)
        self.model = nn.Sequential(*self._layers())

    def residual_units(self, dim: int) -> list[nn.Module]:
        """One stage's residual units at width ``dim``, dilations 1, base, base**2, ..."""
        count, kernel_size, dilation_base, compress = self._units
        return [ResidualUnit(dim, kernel_size, dilation_base**j, compress) for j in range(count)]

    @abstractmethod
    def _layers(self) -> list[nn.Module]:
        """The half's layers in the official order (indices are checkpoint keys)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SEANetEncoder(_SEANet):
    """Waveform (B, 1, T) -> latent (B, D, T / prod(ratios)); arguments as in ``_SEANet``."""

    def _layers(self) -> list[nn.Module]:
        layers: list[nn.Module] = [PaddedConv1d(1, self.n_filters, self.kernel_size)]
        width = self.n_filters
        for ratio in reversed(self.ratios):
            layers += self.residual_units(width)
            layers += [nn.ELU(), PaddedConv1d(width, 2 * width, 2 * ratio, stride=ratio)]
            width *= 2
        if self.lstm_layers:
            layers.append(SkipLSTM(width, self.lstm_layers))
        return [*layers, nn.ELU(), PaddedConv1d(width, self.dimension, self.last_kernel_size)]


class SEANetDecoder(_SEANet):
    """Latent (B, D, F) -> waveform (B, 1, F * prod(ratios)); no final activation; arguments as in
    ``_SEANet``."""

    def _layers(self) -> list[nn.Module]:
        width = self.n_filters * 2 ** len(self.ratios)
        layers: list[nn.Module] = [PaddedConv1d(self.dimension, width, self.kernel_size)]
        if self.lstm_layers:
            layers.append(SkipLSTM(width, self.lstm_layers))
        for ratio in self.ratios:
            layers += [nn.ELU(), TrimmedConvTranspose1d(width, width // 2, 2 * ratio, stride=ratio)]
            width //= 2
            layers += self.residual_units(width)
        return [*layers, nn.ELU(), PaddedConv1d(width, 1, self.last_kernel_size)]
