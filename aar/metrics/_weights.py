"""Reading the weights of the metric networks (VGGish, PANNs CNN14) safely, from a file or the Hub.

A checkpoint is a ``.safetensors`` file, or a ``torch.save`` file read with ``weights_only=True``
(a file that carries pickled Python objects is refused with ``CheckpointError`` rather than run).
Published key names are mapped to aar's by a table (:func:`aar.convert.rename`): every key must match
one rule or a listed rebuildable tensor, and the model then loads strictly.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from .. import hub
from .._loading import adopt_state, state_tensors
from ..convert import load_weights_only
from ..errors import CheckpointError


def resolve_weights(
    path_or_repo: str | os.PathLike, default_filename: str, filename: str | None, hub_kwargs: dict[str, Any]
) -> Path:
    """The checkpoint file named by a local file, a folder holding ``filename``, or a Hub repo id.

    Hub downloads go through ``huggingface_hub`` with ``hub_kwargs`` (as :func:`aar.hub.hub_options`
    gives them: its cache, ``HF_HUB_OFFLINE=1`` and ``local_files_only=True`` apply).

    Raises:
        TypeError: ``path_or_repo`` is not a string or path.
        ValueError: ``filename`` given with a file.
        FileNotFoundError: no such file or folder, or a Hub file that is neither cached nor reachable.
    """
    if not isinstance(path_or_repo, (str, os.PathLike)):
        raise TypeError(f"path_or_repo must be a path or a Hub repo id, got {type(path_or_repo).__name__}")
    local = Path(path_or_repo).expanduser()
    name = filename or default_filename
    if local.is_file():
        if filename is not None:
            raise ValueError(f"filename={filename!r} applies to a folder or Hub repo, but {local} is a file")
        return local
    if local.is_dir():
        if not (local / name).is_file():
            raise FileNotFoundError(f"{local} has no {name!r}; pass filename= to pick another file")
        return local / name
    text = str(path_or_repo)
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise FileNotFoundError(f"no such file or folder: {text!r} (and it is not a Hub repo id)")
    return hub.download(text, name, hub_kwargs)


def read_weights(path: str | os.PathLike, sections: tuple[str, ...] = ("model", "state_dict")) -> dict:
    """Tensors of a safetensors file, or of a weights-only ``torch.save`` file.

    A ``torch.save`` payload may be the state dict itself or hold it under one of ``sections``
    (``{"model": ...}`` is how the PANNs checkpoints are saved). A ``module.`` prefix is removed.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: unreadable, carries pickled Python objects, or holds no dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        try:
            state: Any = load_file(str(path))
        except Exception as err:  # safetensors raises its own error types
            raise CheckpointError(f"cannot read {path} as safetensors: {err}") from None
    else:
        payload = load_weights_only(path)
        state = payload
        if isinstance(payload, Mapping):
            for section in sections:
                if isinstance(payload.get(section), Mapping):
                    state = payload[section]
                    break
    return state_tensors(state, path)


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Strictly load ``state`` into ``module`` built on the meta device, then eval mode.

    Each tensor is cast to the dtype the module was built with and becomes the module's tensor
    (``assign=True``); missing, unexpected or mis-shaped keys raise ``CheckpointError`` naming them.
    """
    adopt_state(module, state, source)
    module.eval()


def fingerprint(module: nn.Module) -> str:
    """A short SHA-256 of a module's class and state dict (names, shapes, dtypes and bytes)."""
    digest = hashlib.sha256(type(module).__name__.encode())
    for key, value in sorted(module.state_dict().items()):
        value = value.detach().to("cpu").contiguous()
        digest.update(f"{key}:{tuple(value.shape)}:{value.dtype}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
