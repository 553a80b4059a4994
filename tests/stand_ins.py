"""Small stand-ins for things that cannot be downloaded here (CLAP weights)."""

from __future__ import annotations

import hashlib

import torch

from aar.conditioning.clap import ClapEncoder


class HashClapBackend:
    """A deterministic CLAP backend: texts hash to vectors, clips map through a fixed projection.

    It plugs into the real ``ClapEncoder`` (resampling, windowing, normalisation all run as usual).
    """

    name = "stand-in"
    device = torch.device("cpu")
    max_samples = 480_000

    def __init__(self) -> None:
        self.projection = torch.randn(64, 512, generator=torch.Generator().manual_seed(0))
        self.clip_lengths: list[int] = []

    def embed_clips(self, clips_NT: torch.Tensor) -> torch.Tensor:
        self.clip_lengths += [clips_NT.shape[-1]] * clips_NT.shape[0]
        N, T = clips_NT.shape
        bins = torch.nn.functional.adaptive_avg_pool1d(clips_NT.abs().unsqueeze(1), 64)[:, 0]
        return bins @ self.projection + 1e-3

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            rows.append(torch.randn(512, generator=torch.Generator().manual_seed(seed)))
        return torch.stack(rows)


def stand_in_clap() -> ClapEncoder:
    return ClapEncoder(HashClapBackend())
