"""Loading and saving shared by both models: fast strict loading, native folders, placement.

Random initialisation of the released AAR transformer costs seconds of CPU time that loading throws
away. Modules built under ``skip_init()`` live on the meta device (shapes and dtypes only);
``adopt_state`` then checks names and shapes strictly, makes the checkpoint's tensors the parameters
(``assign=True``: safetensors files stay memory-mapped) and rebuilds the non-persistent buffers,
which no checkpoint holds, through each module's ``rebuild_buffers()``. Native folders hold
``config.json`` and ``model.safetensors`` (``read_native_weights``, ``write_native``), and
``loading_request`` is the preamble of every ``from_pretrained`` (``device=`` and ``dtype=`` checks,
Hub options); ``native_config`` and ``naming`` turn a file of the wrong kind or a bad config into
one error that names the file. ``torch.save`` files are read with ``weights_only=True``
(``aar.loading.official.load_weights_only``) and their state dicts checked by ``state_tensors``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from aar.errors import KIND_NAMES, CheckpointError, WrongModelKindError
from aar.loading import hub
from aar.loading.files import atomic_path
from aar.loading.hub import Unpack


@dataclass(frozen=True)
class LoadRequest:
    """What a ``from_pretrained`` call asked for, checked before any file or network is touched.

    Attributes:
        device: Where to put the model (None: where it was built, the CPU).
        dtype: Parameter dtype (None: float32).
        hub_kwargs: Download options, as :func:`aar.loading.hub.hub_options` gives them.
    """

    device: torch.device | None
    dtype: torch.dtype | None
    hub_kwargs: dict[str, Any]

    def resolve(self, name_or_path: str | os.PathLike, kind: str, filename: str | None = None) -> hub.Source:
        """Where ``name_or_path`` points for a model of ``kind`` (``"sat"`` or ``"aar"``)."""
        return hub.resolve(name_or_path, kind, filename=filename, **self.hub_kwargs)


def loading_request(*, device=None, dtype=None, **hub_kwargs: Unpack[hub.HubKwargs]) -> LoadRequest:
    """The preamble every ``from_pretrained`` shares: placement checks and Hub options.

    A model's own keywords (``tokenizer=``, ``backend=``, ...) stay in its signature; the Hub
    keywords (:class:`aar.loading.hub.HubKwargs`) are collected as ``**hub_kwargs`` and passed on whole.

    Raises:
        ValueError: an unknown ``device`` or ``dtype`` (before anything is read or downloaded).
        TypeError: a keyword that is not a Hub option.
    """
    options = hub.hub_options(**hub_kwargs)
    device, dtype = check_placement(device, dtype)
    return LoadRequest(device, dtype, options)


def state_tensors(
    state: Any, path: str | os.PathLike, expected: str = "a dict of tensors"
) -> dict[str, torch.Tensor]:
    """The tensors of a state dict read from ``path``, by name, a ``module.`` prefix removed.

    Raises:
        CheckpointError: ``state`` is not a non-empty dict of tensors (``expected`` says what was
            looked for), or an entry is not a tensor (named).
    """
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(
            f"{path} holds no state dict: expected {expected}; found {type(state).__name__}"
        )
    tensors = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: entry {key!r} is {type(value).__name__}, not a tensor")
        tensors[str(key).removeprefix("module.")] = value
    return tensors


def native_config(folder: Path, wanted: str, accept: tuple[str, ...] = ()) -> tuple[str, dict[str, Any]]:
    """The parsed ``config.json`` of a native folder, refused by name when it is another kind.

    Args:
        folder: The native folder.
        wanted: ``"sat"`` or ``"aar"``; a config without ``model_type`` is taken as this kind.
        accept: Other kinds the caller handles itself (a generator folder, for a tokenizer).

    Returns:
        The kind found and the config dict.

    Raises:
        WrongModelKindError: the folder holds another kind of model.
    """
    config = hub.Source("native", folder).read_config()
    found = config.get("model_type", wanted)
    if found != wanted and found not in accept:
        detail = "" if found in KIND_NAMES else f" ({folder / hub.CONFIG_NAME} has model_type {found!r})"
        raise WrongModelKindError(folder, found if found in KIND_NAMES else None, wanted, detail)
    return found, config


def read_native(folder: Path, config_cls: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """The config and tensors of a native folder of ``config_cls.model_type``, refused by name if not.

    Raises:
        WrongModelKindError: the folder holds another kind of model.
        CheckpointError: a config that does not parse, or unreadable weights (naming the file).
    """
    config_dict = native_config(folder, config_cls.model_type)[1]
    with naming(folder / hub.CONFIG_NAME):
        config = config_cls.from_dict(config_dict)
    return config, read_native_weights(folder)


@contextlib.contextmanager
def naming(source: str | os.PathLike) -> Iterator[None]:
    """Re-raise what goes wrong while interpreting ``source`` as a ``CheckpointError`` that names it.

    Wraps config parsing, key conversion and shape inference, whose own messages name the field or
    key but not the file it came from. An error that already names its source passes unchanged.
    """
    try:
        yield
    except CheckpointError as err:
        if err.source is not None:
            raise
        raise CheckpointError(f"{source}: {err}", source=source) from None
    except (ValueError, TypeError, KeyError, IndexError) as err:
        text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        raise CheckpointError(f"{source}: {text}", source=source) from None


def load_state_strict(
    module: nn.Module, state: Mapping[str, torch.Tensor], source: str, *, assign: bool = False
) -> None:
    """Copy ``state`` into ``module``, refusing missing, unexpected or mis-shaped keys by name.

    With ``assign=True`` the tensors of ``state`` become the module's tensors instead of being
    copied (for a module built on the meta device).

    Raises:
        CheckpointError: the keys or shapes do not fit (each named, with ``source``).
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:10]}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:10]}")
    if shapes:
        problems.append(f"mis-shaped keys {shapes[:10]}")
    if problems:
        raise CheckpointError(f"{source} does not fit the model: " + "; ".join(problems), source=source)
    module.load_state_dict(dict(state), strict=True, assign=assign)


def skip_init() -> torch.device:
    """Context manager under which modules are built on the meta device: ``with skip_init(): ...``."""
    return torch.device("meta")


def aligned(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor``, copied to fresh (64-byte aligned) memory if it is not aligned so already.

    MKL rounds a product of one row differently when its weight lies at an address that is not a
    multiple of 16 bytes; the tensors of a memory-mapped safetensors file are only 8-byte aligned, so
    a native folder would otherwise compute other numbers than the same weights read from a ``.pth``.
    """
    return tensor if tensor.device.type != "cpu" or tensor.data_ptr() % 64 == 0 else tensor.clone()


def adopt_state(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``module`` (built under ``skip_init``) by name, strictly.

    Each tensor is converted to the dtype the module was built with, as copying would, and made
    contiguous and 64-byte aligned (``aligned``); the rest is ``load_state_strict``.

    Args:
        module: The model, its parameters on the meta device (a module with real tensors works too).
        state: Native tensors by name.
        source: Where ``state`` came from, for error messages.

    Raises:
        CheckpointError: missing, unexpected or mis-shaped keys (named).
    """
    expected = module.state_dict()
    state = {
        k: aligned(v.to(expected[k].dtype).contiguous()) if k in expected else v for k, v in state.items()
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
        raise CheckpointError(f"cannot read {file} as safetensors: {err}", source=file) from None


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
