"""SEANet encoder and decoder: the convolutional halves of the Scale-level Audio Tokenizer.

Legend: B batch, T samples, F latent frames (``T / hop``), D latent ``dimension``, N ``n_filters``.

Both halves are ``nn.Sequential`` stacks whose indices follow the official layout, so a checkpoint key
``encoder.model.12...`` names the same layer here. Parameterless ELUs keep their slots.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .conv import PaddedConv1d, TrimmedConvTranspose1d


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


def _residual_units(dim: int, count: int, kernel_size: int, dilation_base: int, compress: int):
    return [ResidualUnit(dim, kernel_size, dilation_base**j, compress) for j in range(count)]


class SEANetEncoder(nn.Module):
    """Waveform (B, 1, T) -> latent (B, D, T / prod(ratios))."""

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
        layers: list[nn.Module] = [PaddedConv1d(1, n_filters, kernel_size)]
        width = n_filters
        for ratio in reversed(ratios):
            layers += _residual_units(
                width, n_residual_layers, residual_kernel_size, dilation_base, compress
            )
            layers += [nn.ELU(), PaddedConv1d(width, 2 * width, 2 * ratio, stride=ratio)]
            width *= 2
        if lstm_layers:
            layers.append(SkipLSTM(width, lstm_layers))
        layers += [nn.ELU(), PaddedConv1d(width, dimension, last_kernel_size)]
        self.model = nn.Sequential(*layers)

    def forward(self, wav_B1T: torch.Tensor) -> torch.Tensor:
        return self.model(wav_B1T)


class SEANetDecoder(nn.Module):
    """Latent (B, D, F) -> waveform (B, 1, F * prod(ratios)); no final activation."""

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
        width = n_filters * 2 ** len(ratios)
        layers: list[nn.Module] = [PaddedConv1d(dimension, width, kernel_size)]
        if lstm_layers:
            layers.append(SkipLSTM(width, lstm_layers))
        for ratio in ratios:
            layers += [nn.ELU(), TrimmedConvTranspose1d(width, width // 2, 2 * ratio, stride=ratio)]
            width //= 2
            layers += _residual_units(
                width, n_residual_layers, residual_kernel_size, dilation_base, compress
            )
        layers += [nn.ELU(), PaddedConv1d(width, 1, last_kernel_size)]
        self.model = nn.Sequential(*layers)

    def forward(self, z_BDF: torch.Tensor) -> torch.Tensor:
        return self.model(z_BDF)
