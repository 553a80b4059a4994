"""Reading the weights of the metric networks (VGGish, PANNs CNN14) safely, from a file or the Hub.

A checkpoint is a ``.safetensors`` file, or a ``torch.save`` file read with ``weights_only=True``
(a file that carries pickled Python objects is refused with ``CheckpointError`` rather than run).
Published key names are mapped to aar's by a table (:func:`aar.loading.official.rename`): every key must match
one rule or a listed rebuildable tensor, and the model then loads strictly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from aar.errors import CheckpointError
from aar.loading.native import adopt_state, state_tensors
from aar.loading.official import load_weights_only

#: Sections of the official AAR checkpoints, which a metric network can be given by mistake.
OFFICIAL_SECTIONS = {"generator_state_dict": "a SAT tokenizer", "model_state_dict": "an AAR generator"}


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
            official = [key for key in OFFICIAL_SECTIONS if isinstance(payload.get(key), Mapping)]
            if official:
                raise CheckpointError(
                    f"{path} is an official AAR checkpoint ({official[0]!r}: "
                    f"{OFFICIAL_SECTIONS[official[0]]}), not the weights of a metric network; VGGish "
                    "needs vggish-10086976.pth, PANNs CNN14 Cnn14_16k_mAP=0.438.pth or Cnn14_mAP=0.431.pth"
                )
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
