"""``weights_digest``: the one hash of weights in aar.

Every weight hash goes through it: ``SATTokenizer.fingerprint()`` (the config and codebooks, recorded
in codes files and tokenized corpora), ``aar.metrics.weights_fingerprint`` (every tensor of a
metric network or a tokenizer: the embedding cache's key, the reconstruction report's
``fingerprint``) and ``weights_digest(tokenizer, tokenizer.config.to_dict())`` (config and every
weight: the key of ``datasets`` caches, the check that Ray workers loaded the same tokenizer).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

#: Hex digits kept: 64 bits, as ``SATTokenizer.fingerprint()`` has recorded since 0.1.
DIGEST_LENGTH = 16


def weights_digest(
    weights: nn.Module | Mapping[str, torch.Tensor], header: str | Mapping[str, Any] = "", *,
    layout: bool = True,
) -> str:
    """A short SHA-256 of named tensors: a change of any name, dtype, shape or value gives another.

    The hash reads ``header``, then the tensors' layout (their names, dtypes and shapes, as JSON),
    then each tensor's bytes (row-major, on the CPU), in the mapping's order (a module's:
    ``state_dict()`` order, which its class fixes).

    Args:
        weights: A module (its ``state_dict()``: parameters and persistent buffers) or a mapping of
            name to tensor.
        header: Read first: what else the value depends on; a string, or a dict (a config's
            ``to_dict()``), read as JSON with sorted keys.
        layout: False leaves the layout out, for a caller whose ``header`` already fixes it; only
            ``SATTokenizer.fingerprint()`` does (its config fixes its codebooks' names and shapes,
            and it hashes them as float32), so that codes files written since 0.1 still match.

    Returns:
        16 hex digits.

    Example:
        >>> weights_digest(nn.Linear(2, 2)) != weights_digest(nn.Linear(2, 2))  # other random weights
        True
    """
    tensors = weights.state_dict() if isinstance(weights, nn.Module) else weights
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    if not isinstance(header, str):
        header = json.dumps(dict(header), sort_keys=True)
    digest = hashlib.sha256(header.encode())
    if layout:
        shapes = [[name, str(t.dtype), list(t.shape)] for name, t in tensors.items()]
        digest.update(json.dumps(shapes).encode())
    for t in tensors.values():
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:DIGEST_LENGTH]
