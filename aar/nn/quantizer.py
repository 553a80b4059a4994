"""Scale-level residual quantizer: one codebook per temporal scale, coarse to fine.

Legend: B batch (windows), F latent frames per window (75), D encoder ``dimension``, E codebook vector
width (``latent_dim``), s_i tokens at scale i (``scales[i]``), S number of scales, V codebook size.

Encoding one window: the projected latent ``r`` (B, E, F) is averaged down to s_i frames, each frame
takes its nearest entry of codebook i, the chosen vectors are stretched back to F frames (linear),
refined by a shared phi convolution and subtracted from ``r``. Decoding sums those refined vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def quantizer_device(device: torch.device) -> torch.device:
    """Where the codebook search and lookup run for tensors on ``device``.

    The CPU for Apple's MPS, whose kernels silently return wrong vector-quantizer results (garbled
    audio from EnCodec's quantizer, facebookresearch/audiocraft#31); ``device`` itself elsewhere.
    """
    return torch.device("cpu") if device.type == "mps" else device


class Phi(nn.Conv1d):
    """Residual refinement ``phi(h) = (1 - ratio) * h + ratio * conv(h)``, length-preserving."""

    def __init__(self, dim: int, kernel_size: int, ratio: float) -> None:
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2)
        self.ratio = ratio

    def forward(self, h_BEF: torch.Tensor) -> torch.Tensor:
        return h_BEF * (1 - self.ratio) + super().forward(h_BEF) * self.ratio


class ScaleQuantizer(nn.Module):
    """Projections, the per-scale codebooks and the shared phi convolutions of SAT.

    Args:
        dimension: Encoder output channels D.
        latent_dim: Codebook vector width E; ``project_in``/``project_out`` are identities when E == D.
        scales: Tokens per window at each scale; the last one must equal the frame count F.
        codebook_size: Entries V of each codebook.
        phi_index: For each scale, which phi convolution refines it.
        phi_kernel: Kernel size of the phi convolutions.
        phi_ratio: Residual ratio of phi.
    """

    def __init__(
        self,
        dimension: int,
        latent_dim: int,
        scales: Sequence[int],
        codebook_size: int,
        phi_index: Sequence[int],
        phi_kernel: int = 9,
        phi_ratio: float = 0.5,
    ) -> None:
        super().__init__()
        if len(phi_index) != len(scales):
            raise ValueError(f"phi_index has {len(phi_index)} entries for {len(scales)} scales")
        self.scales = tuple(scales)
        self.phi_index = tuple(phi_index)
        same = latent_dim == dimension
        self.project_in = nn.Identity() if same else nn.Linear(dimension, latent_dim)
        self.project_out = nn.Identity() if same else nn.Linear(latent_dim, dimension)
        self.codebooks = nn.ModuleList(
            nn.Embedding(codebook_size, latent_dim) for _ in self.scales
        )
        self.phi = nn.ModuleList(
            Phi(latent_dim, phi_kernel, phi_ratio) for _ in range(max(self.phi_index) + 1)
        )

    @property
    def frames(self) -> int:
        """Latent frames per window F (the finest scale)."""
        return self.scales[-1]

    def scale_residual(self, si: int, idx_Bs: torch.Tensor) -> torch.Tensor:
        """What scale ``si``'s tokens add to the latent: ``phi(upsample(codebook[idx]))``.

        Args:
            si: Scale index.
            idx_Bs: Token ids, (B, s_si).

        Returns:
            (B, E, F) contribution at full frame rate.
        """
        h_BEs = self.lookup(si, idx_Bs).transpose(1, 2)
        if h_BEs.shape[-1] != self.frames:
            h_BEs = F.interpolate(h_BEs, size=self.frames, mode="linear")
        return self.phi[self.phi_index[si]](h_BEs)

    def next_scale_input(self, f_BEF: torch.Tensor, si: int) -> torch.Tensor:
        """The latent summed so far, averaged down to scale ``si``: (B, E, F) -> (B, s_si, E)."""
        if self.scales[si] != f_BEF.shape[-1]:
            f_BEF = F.interpolate(f_BEF, size=self.scales[si], mode="area")
        return f_BEF.transpose(1, 2)

    def lookup(self, si: int, idx_Bs: torch.Tensor) -> torch.Tensor:
        """Vectors of codebook ``si`` for the ids ``idx_Bs``: (B, s) -> (B, s, E), on the ids' device."""
        book = self.codebooks[si]
        where = quantizer_device(idx_Bs.device)
        if where == idx_Bs.device:
            return book(idx_Bs)
        return F.embedding(idx_Bs.to(where), book.weight.to(where)).to(idx_Bs.device)

    def nearest(self, si: int, x_BsE: torch.Tensor) -> torch.Tensor:
        """Index of the nearest entry of codebook ``si`` for every vector: (B, s, E) -> (B, s)."""
        B, s, E = x_BsE.shape
        where = quantizer_device(x_BsE.device)
        # Distances in float32 whatever the model dtype: low precision flips near-ties.
        x_NE = x_BsE.reshape(B * s, E).to(where, torch.float32)
        embed_EV = self.codebooks[si].weight.to(where, torch.float32).t()
        distance_NV = (
            x_NE.pow(2).sum(1, keepdim=True) - 2 * x_NE @ embed_EV + embed_EV.pow(2).sum(0, keepdim=True)
        )
        return (-distance_NV).max(dim=-1).indices.view(B, s).to(x_BsE.device)

    def encode(self, e_BDF: torch.Tensor) -> list[torch.Tensor]:
        """Quantize encoder output coarse to fine.

        Args:
            e_BDF: Encoder output (B, D, F).

        Returns:
            S LongTensors, the i-th shaped (B, s_i).
        """
        residual_BEF = self.project_in(e_BDF.transpose(1, 2)).transpose(1, 2)
        codes = []
        for si in range(len(self.scales)):
            idx_Bs = self.nearest(si, self.next_scale_input(residual_BEF, si))
            residual_BEF = residual_BEF - self.scale_residual(si, idx_Bs)
            codes.append(idx_Bs)
        return codes

    def decode_latent(self, codes: Sequence[torch.Tensor]) -> torch.Tensor:
        """Sum the contributions of the given scales (the first ``len(codes)``): -> (B, E, F)."""
        f_BEF = self.scale_residual(0, codes[0])
        for si in range(1, len(codes)):
            f_BEF = f_BEF + self.scale_residual(si, codes[si])
        return f_BEF

    def to_decoder(self, f_BEF: torch.Tensor) -> torch.Tensor:
        """Project the summed latent for the decoder: (B, E, F) -> (B, D, F)."""
        return self.project_out(f_BEF.transpose(1, 2)).transpose(1, 2)
