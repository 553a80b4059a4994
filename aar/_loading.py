"""Fast strict loading: build a model's shapes without initialising them, then adopt the checkpoint.

Random initialisation of the released AAR transformer costs seconds of CPU time that loading throws
away. Modules built under ``skip_init()`` live on the meta device (shapes and dtypes only);
``adopt_state`` then checks names and shapes strictly, makes the checkpoint's tensors the parameters
(``assign=True``: safetensors files stay memory-mapped) and rebuilds the non-persistent buffers,
which no checkpoint holds, through each module's ``rebuild_buffers()``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import torch
from torch import nn

from .convert import load_state_strict


def skip_init() -> torch.device:
    """Context manager under which modules are built on the meta device: ``with skip_init(): ...``."""
    return torch.device("meta")


def adopt_state(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``module`` (built under ``skip_init``) by name, strictly.

    Each tensor is converted to the dtype the module was built with, as copying would, and made
    contiguous; the rest is ``load_state_strict``.

    Args:
        module: The model, its parameters on the meta device (a module with real tensors works too).
        state: Native tensors by name.
        source: Where ``state`` came from, for error messages.

    Raises:
        CheckpointError: missing, unexpected or mis-shaped keys (named).
    """
    expected = module.state_dict()
    state = {
        k: v.to(expected[k].dtype).contiguous() if k in expected else v for k, v in state.items()
    }
    load_state_strict(module, state, source, assign=True)
    for sub in module.modules():
        rebuild = getattr(sub, "rebuild_buffers", None)
        if callable(rebuild):
            rebuild()
    left = [n for n, t in itertools.chain(module.named_parameters(), module.named_buffers()) if t.is_meta]
    assert not left, f"tensors left uninitialised after loading {source}: {left[:10]}"
