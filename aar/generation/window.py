"""The contract between the generator and the modes built on it (editing, long generation).

``aar.generation.editing`` and ``aar.generation.long_generation`` drive a generator through these
few members only, so a reader knows what they need, and a stand-in for tests need offer no more.
``AARGenerator`` provides them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch

if TYPE_CHECKING:
    from aar.codes import AudioCodes
    from aar.tokenizer import SATTokenizer


class WindowGenerator(Protocol):
    """What variations, inpainting and long generation need of a generator.

    Attributes:
        tokenizer: The paired ``SATTokenizer``: encodes the audio being edited, decodes the result.
    """

    tokenizer: SATTokenizer

    @property
    def device(self) -> torch.device:
        """Where the model runs, and where a seeded ``torch.Generator`` must live."""

    def clap_vectors(self, clap_emb=None, *, prompt=None, audio=None,
                     sample_rate=None) -> torch.Tensor:
        """The (B, D) condition from exactly one of a CLAP vector, a text prompt or audio."""

    def generate_codes(self, clap_emb=None, **kwargs) -> AudioCodes:
        """One window of codes per condition; ``prefix=``/``keep_scales=`` or ``forced=`` keep tokens."""
