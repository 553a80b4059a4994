"""CLAP embeddings as an :class:`~aar.metrics.extractor.EmbeddingExtractor`, for FAD in CLAP space.

fadtk offers CLAP as an alternative to VGGish: it hears 48-kHz audio, up to 10 s per window, and was
trained on far more varied sounds. The embeddings come from :class:`aar.ClapEncoder` (the ``clap``
extra), so they are the same unit vectors that condition the AAR generator.

Legend: B batch, T samples at 48 kHz, D 512.
"""

from __future__ import annotations

import torch
from torch import nn

from aar.conditioning.clap import CLAP_SAMPLE_RATE, EMBEDDING_DIM, ClapEncoder
from aar.loading.digest import weights_digest
from aar.metrics.extractor import mono_batch


class ClapExtractor:
    """FAD embeddings from a loaded :class:`aar.ClapEncoder`: (B, 1, T) at 48 kHz -> (B, 512).

    Long clips are embedded as the encoder embeds them: consecutive 10-s windows whose unit vectors
    are averaged and renormalised (see :class:`aar.ClapEncoder`).

    Args:
        encoder: A loaded encoder, e.g. ``ClapEncoder.from_pretrained()``.
        batch_size: Windows per model call.

    Example:
        >>> extractor = ClapExtractor(ClapEncoder.from_pretrained())  # doctest: +SKIP
        >>> extractor.embed(torch.randn(2, 1, 48_000)).shape  # doctest: +SKIP
        torch.Size([2, 512])
    """

    sample_rate = CLAP_SAMPLE_RATE
    dim = EMBEDDING_DIM

    def __init__(self, encoder: ClapEncoder, *, batch_size: int = 16) -> None:
        if not isinstance(encoder, ClapEncoder):
            raise TypeError(f"encoder must be an aar.ClapEncoder, got {type(encoder).__name__}")
        self.encoder = encoder
        self.batch_size = batch_size
        self.name = f"clap-{encoder.backend}"
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.encoder!r})"

    @property
    def fingerprint(self) -> str:
        """A hash of the name and the backend's weights where it exposes its network, else of the name."""
        if self._fingerprint is None:
            backend = self.encoder._backend
            network = next((getattr(backend, attr) for attr in ("module", "model")
                            if isinstance(getattr(backend, attr, None), nn.Module)), None)
            self._fingerprint = weights_digest({} if network is None else network, self.name)
        return self._fingerprint

    def embed(self, wav) -> torch.Tensor:
        """(B, 1, T) audio at 48 kHz (or (T,)) -> (B, 512) float32 unit vectors."""
        return self.encoder.embed_audio(mono_batch(wav), CLAP_SAMPLE_RATE, batch_size=self.batch_size)
