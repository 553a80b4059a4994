"""``AudioCodes``: the tokens of a batch of audio, one LongTensor per scale.

Legend: B batch, W one-second windows per item, S scales, s_i tokens of scale i in one window.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True, eq=False)
class AudioCodes(Sequence):
    """Codes of a batch of audio, as ``SATTokenizer.encode`` returns them.

    Behaves as a sequence of ``S`` LongTensors: ``codes[i]`` has shape (B, W, s_i).

    Attributes:
        codes: The per-scale tensors, coarse to fine.
        length: Samples per item at the tokenizer's rate (24 kHz); ``decode`` returns exactly this
            many.
        sample_rate: Rate of the audio that was encoded, in Hz.

    Example:
        >>> import torch
        >>> from aar import AudioCodes
        >>> c = AudioCodes((torch.zeros(2, 3, 1, dtype=torch.long),), length=60000, sample_rate=24000)
        >>> c.batch_size, c.num_windows, c.scales
        (2, 3, (1,))
    """

    codes: tuple[torch.Tensor, ...]
    length: int
    sample_rate: int

    def __post_init__(self) -> None:
        codes = tuple(self.codes)
        object.__setattr__(self, "codes", codes)
        if not codes:
            raise ValueError("AudioCodes needs at least one scale, got none")
        for i, c in enumerate(codes):
            if not isinstance(c, torch.Tensor) or c.ndim != 3:
                got = tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__
                raise ValueError(f"codes[{i}] must be a (B, W, s_i) tensor, got {got}")
            if c.shape[:2] != codes[0].shape[:2]:
                raise ValueError(
                    f"codes[{i}] has batch/windows {tuple(c.shape[:2])}, codes[0] has "
                    f"{tuple(codes[0].shape[:2])}"
                )
        if int(self.length) < 1 or int(self.sample_rate) < 1:
            raise ValueError(
                f"length and sample_rate must be positive, got {self.length} and {self.sample_rate}"
            )

    def __getitem__(self, index):  # type: ignore[override]
        return self.codes[index]

    def __len__(self) -> int:
        return len(self.codes)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.codes)

    def __repr__(self) -> str:
        return (
            f"AudioCodes(batch_size={self.batch_size}, num_windows={self.num_windows}, "
            f"num_scales={len(self)}, length={self.length}, sample_rate={self.sample_rate})"
        )

    @property
    def batch_size(self) -> int:
        """Items B."""
        return self.codes[0].shape[0]

    @property
    def num_windows(self) -> int:
        """Windows W per item."""
        return self.codes[0].shape[1]

    @property
    def scales(self) -> tuple[int, ...]:
        """Tokens per window at each scale."""
        return tuple(c.shape[-1] for c in self.codes)

    @property
    def device(self) -> torch.device:
        """Device of the tensors."""
        return self.codes[0].device

    def to(self, device: torch.device | str) -> AudioCodes:
        """A copy on ``device``."""
        return AudioCodes(tuple(c.to(device) for c in self.codes), self.length, self.sample_rate)

    def item(self, index: int) -> AudioCodes:
        """The codes of item ``index`` alone: batch 1, its windows, length and rate."""
        if not -self.batch_size <= index < self.batch_size:
            raise IndexError(f"item {index} out of range for a batch of {self.batch_size}")
        rows = slice(index, index + 1 or None)  # -1 reaches the end
        return AudioCodes(tuple(c[rows] for c in self.codes), self.length, self.sample_rate)

    def window(self, index: int) -> list[torch.Tensor]:
        """The codes of one window as S tensors shaped (B, s_i)."""
        if not -self.num_windows <= index < self.num_windows:
            raise IndexError(f"window {index} out of range for {self.num_windows} windows")
        return [c[:, index] for c in self.codes]

    def equal(self, other: Sequence[torch.Tensor]) -> bool:
        """True when ``other`` holds the same tokens at every scale."""
        return len(other) == len(self) and all(
            a.shape == b.shape and torch.equal(a.cpu(), b.cpu()) for a, b in zip(self, other)
        )


def as_scale_list(codes: Sequence[torch.Tensor], name: str = "codes") -> list[torch.Tensor]:
    """Check that ``codes`` is a sequence of integer tensors and return it as a list."""
    if isinstance(codes, torch.Tensor) or not isinstance(codes, Sequence):
        raise TypeError(
            f"{name} must be AudioCodes or a list of per-scale tensors, got {type(codes).__name__}"
        )
    out = []
    for i, c in enumerate(codes):
        if not isinstance(c, torch.Tensor):
            raise TypeError(f"{name}[{i}] must be a torch.Tensor, got {type(c).__name__}")
        if c.dtype == torch.bool or c.is_floating_point() or c.is_complex():
            raise TypeError(f"{name}[{i}] must hold integer token ids, got dtype {c.dtype}")
        out.append(c)
    return out
