"""The generator's condition: a CLAP vector given directly, or made from a text prompt or audio.

Legend: B batch, D CLAP dim (512).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ._checks import check_texts


def check_clap_embedding(clap_emb, cond_dim: int) -> torch.Tensor:
    """Validate CLAP vector(s) and shape them (B, D).

    Args:
        clap_emb: Tensor or numpy array shaped (D,) or (B, D), floating point and finite.
        cond_dim: D, the size the generator takes.

    Returns:
        The (B, D) tensor, on its own device and in its own dtype.

    Raises:
        TypeError: not a tensor or array, or not floating point.
        ValueError: wrong shape, empty batch, or NaN/Inf values.
    """
    if isinstance(clap_emb, np.ndarray):
        clap_emb = torch.from_numpy(clap_emb)
    if not isinstance(clap_emb, torch.Tensor):
        raise TypeError(f"clap_emb must be a tensor or numpy array, got {type(clap_emb).__name__}")
    if not clap_emb.is_floating_point():
        raise TypeError(f"clap_emb must be floating point, got dtype {clap_emb.dtype}")
    if clap_emb.ndim == 1:
        clap_emb = clap_emb.unsqueeze(0)
    if clap_emb.ndim != 2 or clap_emb.shape[1] != cond_dim or clap_emb.shape[0] == 0:
        raise ValueError(
            f"clap_emb must be shaped ({cond_dim},) or (B, {cond_dim}), got {tuple(clap_emb.shape)}"
        )
    if not torch.isfinite(clap_emb).all():
        raise ValueError("clap_emb contains NaN or Inf values")
    return clap_emb


def resolve_condition(clap_emb, prompt, audio, sample_rate, clap_encoder: Callable[[], object]):
    """The CLAP vector(s) of exactly one of ``clap_emb``, ``prompt`` or ``audio``, unvalidated.

    Args:
        clap_emb: CLAP vector(s), returned as given.
        prompt: A string or list of strings, embedded with ``clap_encoder().embed_text``.
        audio: Audio embedded with ``clap_encoder().embed_audio`` at ``sample_rate``.
        sample_rate: Rate of ``audio`` in Hz; required with it.
        clap_encoder: Returns the ``ClapEncoder`` to use (called only for a prompt or audio).

    The prompt or audio is checked before ``clap_encoder`` is called, so a bad one fails before CLAP
    loads.

    Raises:
        ValueError: none or more than one condition, audio without its rate, an empty prompt list,
            or audio of a shape or rate that is not allowed.
        TypeError: a prompt that is not a str or a list of str.
    """
    from .audio import as_audio_batch, check_sample_rate

    named = (("clap_emb", clap_emb), ("prompt", prompt), ("audio", audio))
    given = [n for n, v in named if v is not None]
    if len(given) != 1:
        raise ValueError(f"pass exactly one of clap_emb, prompt or audio, got {given or 'none'}")
    if prompt is not None:
        return clap_encoder().embed_text(check_prompt(prompt))
    if audio is not None:
        if sample_rate is None:
            raise ValueError("audio= needs sample_rate= (its rate in Hz)")
        sample_rate = check_sample_rate(sample_rate)
        return clap_encoder().embed_audio(as_audio_batch(audio, "audio"), sample_rate)
    return clap_emb


def check_prompt(prompt):
    """Validate a text prompt: a str or a non-empty list or tuple of str; returned as given."""
    check_texts("prompt", prompt)
    return prompt
