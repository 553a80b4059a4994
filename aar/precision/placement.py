"""The generator's device, dtype and precision: what ``AARGenerator`` runs on, and how to change it.

``to()``, ``float()``, ``half()``, ``bfloat16()`` and ``double()`` are ``nn.Module``'s own: they move
or cast every parameter and buffer of the generator, its tokenizer included. The faster paths are
not a dtype but a set of swapped modules: :meth:`GeneratorPlacement.set_precision` (or
``precision=`` at loading) puts the generator in one, from any other.
"""

from __future__ import annotations

import torch

from aar.precision.policy import apply_precision, precision_of


class GeneratorPlacement:
    """Device, dtype and precision of ``AARGenerator`` (a mixin over its ``transformer``).

    Example:
        >>> from aar import AARConfig, AARGenerator, SATConfig, SATTokenizer
        >>> tok = SATTokenizer(SATConfig(n_filters=4, dimension=8, latent_dim=8, codebook_size=64))
        >>> gen = AARGenerator(AARConfig(depth=1, embed_dim=64, num_heads=1, latent_dim=8,
        ...                              codebook_size=64), tok).eval()
        >>> gen.set_precision("bf16").precision, gen.dtype, gen.transformer.head.weight.dtype
        ('bf16', torch.bfloat16, torch.float32)
        >>> gen.set_precision("fp32").precision, gen.dtype
        ('fp32', torch.float32)
    """

    transformer: torch.nn.Module

    @property
    def precision(self) -> str:
        """The arithmetic the generator runs: "fp32", "bf16" or "int8", whichever way it was set
        (``precision=`` at loading, :meth:`set_precision`, ``dtype=``)."""
        return precision_of(self)

    def set_precision(self, precision: str, *, emulate: bool = False):
        """Run in ``precision`` from now on, in place: "fp32" (the official arithmetic), "bf16"
        (bfloat16 matrix weights but the head's, float32 activations), "int8" (CPU only) or "auto".

        The swaps of ``aar.precision.swaps``; the tokenizer is left as it is. From "bf16" back to
        "fp32" the matrix weights keep their bfloat16 rounding: reload for the official numbers.

        Args:
            precision: One of ``aar.precision.policy.PRECISIONS``.
            emulate: int8 only: the float32 emulation of the int8 rounding instead of the kernel.

        Returns:
            ``self``.

        Raises:
            ValueError: an unknown precision, or int8 off the CPU.
        """
        return apply_precision(self, precision, emulate=emulate)

    @property
    def device(self) -> torch.device:
        """Device of the transformer's weights."""
        return next(self.transformer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the transformer's matrix weights (bfloat16 under ``precision="bf16"``)."""
        return self.transformer.word_embed.weight.dtype
