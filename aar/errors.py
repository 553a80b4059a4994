"""Every error type aar raises on purpose, in one place, so callers can catch by type.

Each one also subclasses the builtin that code written before it existed would have caught
(``ValueError``, ``ImportError``, ``ConnectionError``), and all share :class:`AARError`, so
``except aar.errors.AARError`` catches whatever aar refuses deliberately. The messages are one line
and name the value received and what was wanted; the same facts are attributes, for programs.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

#: What each model kind is called in messages.
KIND_NAMES = {
    "sat": "a tokenizer (SAT) checkpoint",
    "aar": "a generator (AAR) checkpoint",
    "clap": "a CLAP checkpoint",
}


class AARError(Exception):
    """Base class of the errors below.

    They pickle with their message and attributes (worker processes send errors back this way),
    although their constructors take other arguments than the message.
    """

    def __reduce__(self):
        state = dict(self.__dict__)
        if isinstance(self, ImportError):  # slots, not in __dict__
            state.update(name=self.name, path=self.path)
        return _rebuild, (type(self), self.args, state)


def _rebuild(cls: type[AARError], args: tuple, state: dict) -> AARError:
    err = cls.__new__(cls, *args)
    err.args = args
    for key, value in state.items():
        setattr(err, key, value)
    return err


class CheckpointError(AARError, ValueError):
    """A checkpoint that cannot be read, or whose keys, shapes or config do not fit the model.

    Attributes:
        source: The file or folder the error is about, when the message already names it.
    """

    def __init__(self, message: str, *, source: str | os.PathLike | None = None):
        super().__init__(message)
        self.source = None if source is None else str(source)


class WrongModelKindError(CheckpointError):
    """A checkpoint file or folder of another kind than the one asked for.

    Attributes:
        found: ``"sat"``, ``"aar"``, ``"clap"``, or None when the kind is not recognised.
        wanted: The kinds that would have been accepted.
    """

    def __init__(self, source: str | os.PathLike, found: str | None, wanted: str | Sequence[str],
                 detail: str = ""):
        wanted = (wanted,) if isinstance(wanted, str) else tuple(wanted)
        what = KIND_NAMES.get(found, "not a checkpoint of any kind aar knows")
        asked = " or ".join(KIND_NAMES[k] for k in wanted)
        super().__init__(f"{source} is {what}, but {asked} was wanted{detail}", source=source)
        self.found = found
        self.wanted = wanted


class MissingTokenizerError(AARError, ValueError):
    """An official generator checkpoint came without its paired tokenizer.

    Attributes:
        source: The generator checkpoint.
    """

    def __init__(self, source: str | os.PathLike):
        super().__init__(
            f"{source} is an official generator checkpoint without its tokenizer: pass tokenizer= "
            "(a SATTokenizer or anything SATTokenizer.from_pretrained accepts), or put "
            "SAT_d128_lat128.pth beside it"
        )
        self.source = str(source)


class HubUnreachableError(AARError, ConnectionError):
    """The Hugging Face Hub cannot be reached and the file is not in the local cache.

    Attributes:
        repo_id: The repository asked for.
        path_in_repo: The file asked for (not ``filename``: ``OSError`` gives that a meaning).
        endpoint: The Hub address that was tried.
    """

    def __init__(self, repo_id: str, filename: str, endpoint: str, reason: str = ""):
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"cannot reach the Hugging Face Hub at {endpoint}{why} to fetch {filename!r} of "
            f"{repo_id!r}, and it is not in the local cache; to work offline, set HF_HUB_OFFLINE=1 "
            "with the model already cached, or pass a local path"
        )
        self.repo_id = repo_id
        self.path_in_repo = filename
        self.endpoint = endpoint


class MissingExtraError(AARError, ImportError):
    """An optional package is not installed, or is installed but does not import; the message gives
    the pip command of its extra. Raised by :func:`require_extra`, the one check of aar's extras.

    Attributes:
        extra: The ``aar-audio`` extra that provides it (``"clap"``, ``"data"``, ``"ray"``, ``"eval"``,
            ``"demo"``).
        package: The import name that is missing (or broken).
        needed_for: What needed it.
        cause: Why an installed package does not import (its own message), or None when it is missing.
    """

    def __init__(self, extra: str, package: str, needed_for: str, cause: str | None = None):
        state = ("which is not installed; install it with" if cause is None else
                 f"which is installed but cannot be imported ({cause}); reinstall it in a fresh "
                 "environment with")
        super().__init__(f"{needed_for} needs the {package!r} package, {state}: {pip_command(extra)}",
                         name=package)
        self.extra = extra
        self.package = package
        self.needed_for = needed_for
        self.cause = cause


class UploadError(AARError, ValueError):
    """A file given to the ``aar demo`` page that it refuses: too large, too long, empty, unreadable,
    or outside the app's temporary folder.

    Attributes:
        path: The file.
        reason: What is wrong with it, and what is allowed.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{os.path.basename(os.fspath(path))}: {reason}")
        self.path = str(path)
        self.reason = reason


class TorchVersionError(AARError, RuntimeError):
    """The installed torch is older than what a step needs.

    Attributes:
        found: ``torch.__version__``.
        needed: The oldest release that works, e.g. ``"2.6"``.
    """

    def __init__(self, found: str, needed: str, needed_for: str):
        super().__init__(f"{needed_for} needs torch >= {needed}, but torch {found} is installed: "
                         f'pip install "torch>={needed}"')
        self.found = found
        self.needed = needed
        self.needed_for = needed_for


class ClippingWarning(UserWarning):
    """Audio outside [-1, 1] was clipped because the file's encoding cannot hold it (PCM, Vorbis)."""


def pip_command(extra: str) -> str:
    """The command that installs one of aar's extras, for the way this aar was installed.

    aar installed from a checkout (``pip install -e .``, its ``pyproject.toml`` beside the package):
    ``pip install -e ".[clap]"`` when the current folder is the checkout, else the same with the
    checkout's path. Otherwise the distribution's name: ``pip install "aar-audio[clap]"``.
    """
    root = Path(__file__).resolve().parents[1]
    try:
        ours = 'name = "aar-audio"' in (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        ours = False
    if not ours:
        return f'pip install "aar-audio[{extra}]"'
    try:
        here = Path.cwd().resolve() == root
    except OSError:  # the current folder was deleted
        here = False
    return f'pip install -e "{"." if here else root}[{extra}]"'


def require_extra(module: str, extra: str, needed_for: str, *, load: bool = True) -> ModuleType | None:
    """Import an optional module of one of aar's extras, or raise :class:`MissingExtraError`.

    The one check of the optional dependencies: every place that needs an extra's package goes
    through it, so a missing or broken install always reads the same, names the package and the
    pip command, and is caught by type.

    Args:
        module: The import name, e.g. ``"pyarrow.parquet"``; its top-level package is what is named.
        extra: The ``aar-audio`` extra that installs it.
        needed_for: What needs it; the message starts with it (``"aar tokenize"``).
        load: False: only look the package up, import nothing and return None. For a package
            whose import has side effects (laion-clap downloads tokenizers when imported), or a
            check made early, before slow work.

    Returns:
        The imported module (None with ``load=False``).

    Raises:
        MissingExtraError: the package is not installed; or a package it imports is not (that one
            is named); or it is installed but its import fails (the failure is its ``cause``).

    Example:
        >>> require_extra("json", "data", "this example").dumps([1])
        '[1]'
    """
    package = module.split(".")[0]
    if not _installed(package):
        raise MissingExtraError(extra, package, needed_for)
    if not load:
        return None
    try:
        return importlib.import_module(module)
    except ImportError as err:
        dependency = (err.name or "").split(".")[0]
        if dependency and not _installed(dependency):
            raise MissingExtraError(extra, dependency, needed_for) from err
        cause = " ".join(str(err).split())  # one line
        raise MissingExtraError(extra, package, needed_for, cause) from err


def _installed(package: str) -> bool:
    """Whether ``package`` can be imported, found without importing it (``find_spec``); a module in
    ``sys.modules`` counts, a ``None`` entry there (an import that is refused) does not."""
    if sys.modules.get(package) is not None:
        return True
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


# ------------------------------------------------------------------ argument checks
def check_positive_int(name: str, value: object, *, optional: bool = False) -> int | None:
    """Return ``value`` if it is an integer >= 1 (``None`` too when ``optional``).

    Raises:
        ValueError: anything else (a bool, a float, a string, 0, a negative number), naming
            ``name`` and the value received.
    """
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "None or a positive integer" if optional else "a positive integer"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return value


def check_texts(name: str, value: object) -> list[str]:
    """``value`` (one string, or a non-empty list or tuple of strings) as a list of strings.

    Raises:
        TypeError: not a str or list/tuple, or an item that is not a str (its index and type named).
        ValueError: an empty list or tuple.
    """
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, (list, tuple)):
        raise TypeError(f"{name} must be a str or a list of str, got {type(value).__name__}")
    if len(texts) == 0:
        raise ValueError(f"{name} is an empty list; need at least one string")
    bad = [(i, type(t).__name__) for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"{name} must hold only str; item {bad[0][0]} is {bad[0][1]}")
    return list(texts)


def check_int_range(name: str, value: object, low: int, high: int | None = None, *,
                    shown: str | None = None) -> int:
    """Return ``value`` if it is an integer (not a bool) in ``[low, high]`` (no upper end for None).

    Raises:
        ValueError: anything else, naming ``name``, the range (``shown`` if given) and the value.
    """
    integer = isinstance(value, int) and not isinstance(value, bool)
    if not integer or value < low or (high is not None and value > high):
        allowed = shown or (f">= {low}" if high is None else f"in [{low}, {high}]")
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    return value


def check_float_tensor(name: str, value: object):
    """``value`` (a torch tensor or numpy array of floating point) as a ``torch.Tensor``.

    Raises:
        TypeError: neither a tensor nor an array, or not floating point; naming ``name``.
    """
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be floating point, got dtype {value.dtype}")
    return value


# ------------------------------------------------------------------ one-time messages
_said: set[tuple[str, str]] = set()


def log_once(logger: logging.Logger, level: int, key: str, message: str, *args: object) -> None:
    """Log ``message % args`` on ``logger`` at ``level`` the first time ``key`` comes up in this process.

    For what holds for the whole process (a slow path on this CPU, a kernel that is missing), so a
    loop or a batch of files says it once. ``key`` is per logger.
    """
    if (logger.name, key) not in _said:
        _said.add((logger.name, key))
        logger.log(level, message, *args)
