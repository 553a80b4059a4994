"""The generator's condition: a CLAP vector given directly, or made from a text prompt or audio.

Legend: B batch, D CLAP dim (512).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from aar.errors import check_float_tensor, check_texts

#: How far a row's norm may lie from 1 and still be used as given, bit for bit.
UNIT_NORM_TOLERANCE = 1e-4


def check_clap_embedding(clap_emb, cond_dim: int) -> torch.Tensor:
    """Validate CLAP vector(s), shape them (B, D) and scale each row to unit norm.

    The generator was trained on unit-norm CLAP embeddings (what CLAP's own ``get_*_embedding`` calls
    and :class:`aar.conditioning.clap.ClapEncoder` return), while ``transformers``' ``get_audio_features`` and
    ``get_text_features`` return unnormalised ones: a row whose norm is not 1 (within
    ``UNIT_NORM_TOLERANCE``) is divided by its norm, so ``v`` and ``10 * v`` give the same audio. Rows
    already of unit norm are used as given. A zero row has no direction and is refused.

    Args:
        clap_emb: Tensor or numpy array shaped (D,) or (B, D), floating point and finite.
        cond_dim: D, the size the generator takes.

    Returns:
        The (B, D) tensor of unit rows, on its own device and in its own dtype.

    Raises:
        TypeError: not a tensor or array, or not floating point.
        ValueError: wrong shape, empty batch, NaN/Inf values, or a row of norm 0.

    Example:
        >>> v = torch.zeros(512); v[0] = 10.0
        >>> check_clap_embedding(v, 512).norm(dim=-1)
        tensor([1.])
    """
    clap_emb = check_float_tensor("clap_emb", clap_emb)
    if clap_emb.ndim == 1:
        clap_emb = clap_emb.unsqueeze(0)
    if clap_emb.ndim != 2 or clap_emb.shape[1] != cond_dim or clap_emb.shape[0] == 0:
        raise ValueError(
            f"clap_emb must be shaped ({cond_dim},) or (B, {cond_dim}), got {tuple(clap_emb.shape)}"
        )
    if not torch.isfinite(clap_emb).all():
        raise ValueError("clap_emb contains NaN or Inf values")
    norm_B = clap_emb.double().norm(dim=-1)
    zero = (norm_B == 0).nonzero().flatten().tolist()
    if zero:
        raise ValueError(f"clap_emb row(s) {zero} are all zeros: a CLAP embedding is a direction (a unit "
                         "vector, which aar scales any other norm to), and a zero vector has none")
    off_B = (norm_B - 1).abs() > UNIT_NORM_TOLERANCE
    if off_B.any():
        scale_B = torch.where(off_B, norm_B, torch.ones_like(norm_B))
        clap_emb = (clap_emb.double() / scale_B[:, None]).to(clap_emb.dtype)
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
    from aar.audio import as_audio_batch, check_sample_rate

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
