"""Loading and saving shared by both models: fast strict loading, native folders, placement.

Random initialisation of the released AAR transformer costs seconds of CPU time that loading throws
away. Modules built under ``skip_init()`` live on the meta device (shapes and dtypes only);
``adopt_state`` then checks names and shapes strictly, makes the checkpoint's tensors the parameters
(``assign=True``: safetensors files stay memory-mapped) and rebuilds the non-persistent buffers,
which no checkpoint holds, through each module's ``rebuild_buffers()``. Native folders hold
``config.json`` and ``model.safetensors`` (``read_native_weights``, ``write_native``), and
``check_placement`` validates the ``device=`` and ``dtype=`` of every ``from_pretrained``.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from . import hub
from ._files import atomic_path
from .convert import CheckpointError, load_state_strict


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


#: Parameter dtypes a model loads in, by name. Outputs are float32 whichever is chosen.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "float64": torch.float64}


def check_placement(device, dtype) -> tuple[torch.device | None, torch.dtype | None]:
    """Validate the ``device=`` and ``dtype=`` of ``from_pretrained``; a dtype may be given by name.

    Raises:
        ValueError: an unknown device string, or a dtype other than those in ``DTYPES``.
    """
    if device is not None:
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(
                f"device must be a torch.device or a name such as 'cpu' or 'cuda:0', got {device!r}"
            ) from None
    if isinstance(dtype, str):
        dtype = DTYPES.get(dtype.removeprefix("torch."), dtype)
    if dtype is not None and dtype not in DTYPES.values():
        raise ValueError(f"dtype must be one of {list(DTYPES)} (a torch.dtype or its name), got {dtype!r}")
    return device, dtype


def read_native_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Tensors of a native folder's ``model.safetensors``, with a clear error if unreadable."""
    file = folder / hub.WEIGHTS_NAME
    if not file.is_file():
        raise FileNotFoundError(f"{folder} has no {hub.WEIGHTS_NAME}")
    try:
        return load_file(str(file))
    except Exception as err:
        raise CheckpointError(f"cannot read {file} as safetensors: {err}") from None


def write_native(folder: str | os.PathLike, config: dict, state: dict[str, torch.Tensor]) -> Path:
    """Write ``model.safetensors`` and then ``config.json`` into ``folder``, each atomically.

    If writing the weights fails, the folder is left as it was. The old ``config.json`` is removed
    just before the new weights replace the old, so a save cut short after that point leaves a folder
    that loading refuses (no config), never new weights beside an old config.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    with atomic_path(folder / hub.WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        (folder / hub.CONFIG_NAME).unlink(missing_ok=True)
    with atomic_path(folder / hub.CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(config, indent=2) + "\n")
    return folder
