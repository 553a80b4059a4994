"""Frozen configurations for the tokenizer (SAT) and the generator (AAR).

Both round-trip through ``config.json``: ``to_dict`` writes every field plus a ``model_type`` tag and
``from_dict`` refuses unknown keys, so a typo in a hand-edited file is an error rather than a silently
ignored setting. Derived values (hop length, frames per window, tokens per window) are properties.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, TypeVar

#: The 16 temporal scales shared by every released checkpoint: 455 tokens per one-second window.
DEFAULT_SCALES: tuple[int, ...] = (1, 2, 4, 6, 9, 12, 16, 20, 25, 31, 37, 43, 50, 58, 66, 75)


_C = TypeVar("_C", bound="_JsonConfig")


class _JsonConfig:
    """What both configs share: the ``config.json`` round trip (a ``model_type`` tag, every field, no
    others) and the values derived from ``scales``."""

    model_type: ClassVar[str]
    _positive: ClassVar[tuple[str, ...]]  # fields that must be > 0
    scales: tuple[int, ...]

    def _check_positive(self) -> None:
        for name in self._positive:
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"{type(self).__name__}.{name} must be positive, got {value!r}")

    @property
    def num_scales(self) -> int:
        """Number of scales ``S`` (16 for the releases); generation takes this many steps."""
        return len(self.scales)

    @property
    def tokens_per_window(self) -> int:
        """Tokens ``L`` of one window, summed over the scales (455 for the releases)."""
        return sum(self.scales)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, tagged with ``model_type``."""
        return {"model_type": self.model_type, **asdict(self)}

    @classmethod
    def from_dict(cls: type[_C], data: dict[str, Any]) -> _C:
        """Build from a ``to_dict`` result; unknown keys, another ``model_type`` or values of the
        wrong kind raise ``ValueError``."""
        data = dict(data)
        tag = data.pop("model_type", cls.model_type)
        if tag != cls.model_type:
            raise ValueError(f"config has model_type={tag!r}, expected {cls.model_type!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; allowed: {sorted(known)}")
        defaults = {f.name: f.default for f in fields(cls)}
        for name, value in data.items():
            _check_type(cls.__name__, name, value, defaults[name])
            if isinstance(value, list):
                data[name] = tuple(value)
        return cls(**data)


def _check_type(owner: str, name: str, value: Any, default: Any) -> None:
    """A hand-edited config must hold values of the field's kind (the default tells which)."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if isinstance(default, tuple):
        ok, kind = isinstance(value, (list, tuple)) and all(map(is_int, value)), "a list of integers"
    elif isinstance(default, float):
        ok, kind = is_int(value) or isinstance(value, float), "a number"
    else:
        ok, kind = is_int(value), "an integer"
    if not ok:
        raise ValueError(f"{owner}.{name} must be {kind}, got {value!r}")


@dataclass(frozen=True)
class SATConfig(_JsonConfig):
    """Hyperparameters of the Scale-level Audio Tokenizer.

    Attributes:
        sample_rate: Audio rate the codec works at, in Hz.
        window: Samples per window; every window is coded on its own.
        n_filters: SEANet base width (channels after the first convolution).
        dimension: Channels of the encoder output / decoder input.
        latent_dim: Width of the codebook vectors (``project_in`` maps ``dimension`` to it).
        ratios: SEANet up-sampling ratios, decoder order; the encoder uses them reversed.
        n_residual_layers: Residual blocks per SEANet stage.
        lstm_layers: Layers of the LSTM (with skip) in the middle of encoder and decoder.
        kernel_size: Kernel of the first convolution.
        last_kernel_size: Kernel of the last convolution.
        residual_kernel_size: Kernel of the first convolution inside a residual block.
        dilation_base: Dilation of the j-th residual block of a stage is ``dilation_base ** j``.
        compress: Channel reduction inside residual blocks.
        scales: Tokens per window at each scale, coarse to fine; the last equals the frame count.
        codebook_size: Entries of each scale's codebook (``V``).
        num_phi: Number of shared phi convolutions.
        phi_kernel: Kernel size of the phi convolutions.
        phi_ratio: Residual ratio of phi: ``phi(h) = (1 - r) h + r conv(h)``.
    """

    model_type: ClassVar[str] = "sat"
    _positive: ClassVar[tuple[str, ...]] = (
        "sample_rate", "window", "n_filters", "dimension", "latent_dim", "n_residual_layers",
        "codebook_size", "num_phi", "phi_kernel",
    )

    sample_rate: int = 24000
    window: int = 24000
    n_filters: int = 32
    dimension: int = 128
    latent_dim: int = 128
    ratios: tuple[int, ...] = (8, 5, 4, 2)
    n_residual_layers: int = 1
    lstm_layers: int = 2
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_base: int = 2
    compress: int = 2
    scales: tuple[int, ...] = DEFAULT_SCALES
    codebook_size: int = 1024
    num_phi: int = 6
    phi_kernel: int = 9
    phi_ratio: float = 0.5

    def __post_init__(self) -> None:
        self._check_positive()
        if self.lstm_layers < 0:
            raise ValueError(f"SATConfig.lstm_layers must be >= 0, got {self.lstm_layers}")
        if not self.ratios or any(r < 1 for r in self.ratios):
            raise ValueError(f"SATConfig.ratios must be positive integers, got {self.ratios}")
        if self.window % self.hop_length:
            raise ValueError(
                f"SATConfig.window={self.window} is not a multiple of the hop length "
                f"{self.hop_length} (product of ratios {self.ratios})"
            )
        s = self.scales
        if not s or any(b <= a for a, b in zip(s, s[1:])) or s[0] < 1:
            raise ValueError(f"SATConfig.scales must be strictly increasing and >= 1, got {s}")
        if s[-1] != self.frames_per_window:
            raise ValueError(
                f"SATConfig.scales must end at the frame count {self.frames_per_window}, got {s[-1]}"
            )
        if not 0.0 <= self.phi_ratio <= 1.0:
            raise ValueError(f"SATConfig.phi_ratio must lie in [0, 1], got {self.phi_ratio}")

    @property
    def hop_length(self) -> int:
        """Samples per latent frame (product of the ratios)."""
        return math.prod(self.ratios)

    @property
    def frames_per_window(self) -> int:
        """Latent frames per window (75 for the releases)."""
        return self.window // self.hop_length

    @property
    def frame_rate(self) -> float:
        """Latent frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def phi_index(self) -> tuple[int, ...]:
        """Which phi convolution each scale uses.

        Scale ``i`` uses the convolution whose tick lies closest to ``i / (S - 1)``, the first one on
        ties. The ticks are ``linspace(1/(2K), 1 - 1/(2K), K)``, except for K == 4 convolutions, where
        the official code uses ``linspace(1/(3K), 1 - 1/(3K), K)``. For 16 scales and 6 convolutions
        this is ``(0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 5, 5, 5)``. The ticks are computed in float64
        exactly as ``numpy.linspace`` does, because two ties are exact and decide the table.
        """
        k = self.num_phi
        edge = 1 / (3 * k) if k == 4 else 1 / (2 * k)
        start, stop = edge, 1 - edge
        if k == 1:
            ticks = [start]
        else:
            step = (stop - start) / (k - 1)
            ticks = [start + j * step for j in range(k)]
            ticks[-1] = stop
        last = max(self.num_scales - 1, 1)
        table = []
        for i in range(self.num_scales):
            at = i / last
            gaps = [abs(t - at) for t in ticks]
            table.append(gaps.index(min(gaps)))
        return tuple(table)



@dataclass(frozen=True)
class AARConfig(_JsonConfig):
    """Hyperparameters of the next-scale transformer.

    Attributes:
        depth: Number of transformer blocks.
        embed_dim: Width ``C`` of the residual stream.
        num_heads: Attention heads (head dim ``embed_dim // num_heads``).
        cond_dim: Size of the CLAP condition vector ``D``.
        mlp_ratio: FFN hidden width over ``embed_dim``.
        norm_eps: Epsilon of the affine-free LayerNorms.
        max_scale_mul: Upper bound on the log of the cosine-attention temperature.
        latent_dim: Width of the tokenizer's codebook vectors (input of ``word_embed``).
        codebook_size: Vocabulary ``V`` of every scale.
        scales: The tokenizer's scales; 455 tokens for the releases.
    """

    model_type: ClassVar[str] = "aar"
    _positive: ClassVar[tuple[str, ...]] = (
        "depth", "embed_dim", "num_heads", "cond_dim", "mlp_ratio", "latent_dim", "codebook_size",
    )

    depth: int = 16
    embed_dim: int = 1024
    num_heads: int = 16
    cond_dim: int = 512
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    max_scale_mul: float = math.log(100.0)
    latent_dim: int = 128
    codebook_size: int = 1024
    scales: tuple[int, ...] = DEFAULT_SCALES

    def __post_init__(self) -> None:
        self._check_positive()
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"AARConfig.embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}"
            )
        if not self.scales or any(b <= a for a, b in zip(self.scales, self.scales[1:])):
            raise ValueError(f"AARConfig.scales must be strictly increasing, got {self.scales}")

    @property
    def head_dim(self) -> int:
        """Channels per attention head."""
        return self.embed_dim // self.num_heads

    @property
    def mlp_dim(self) -> int:
        """Hidden width of the FFN."""
        return round(self.embed_dim * self.mlp_ratio)

