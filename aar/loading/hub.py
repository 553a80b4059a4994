"""Where weights come from: a local file, a local folder, or a Hugging Face Hub repository.

Every ``from_pretrained`` resolves its argument here into a :class:`Source`, then builds, loads
strictly and calls ``.eval()``. Downloads go through ``huggingface_hub``, so its cache, revisions,
tokens and offline mode (``HF_HUB_OFFLINE=1`` or ``local_files_only=True``) apply. When the Hub does
not answer a short probe, a cached file is used as it is and a missing one fails at once
(:class:`~aar.errors.HubUnreachableError`), instead of after huggingface_hub's retries.

Two layouts are understood:

* official: a ``torch.save`` pickle such as ``SAT_d128_lat128.pth`` (read with ``weights_only=True``);
* native: ``config.json`` + ``model.safetensors``, as ``save_pretrained`` writes. A generator folder
  holds its tokenizer in ``tokenizer/``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from aar.errors import HubUnreachableError, MissingTokenizerError

try:
    from typing import Unpack
except ImportError:  # Python 3.10: typing_extensions (a dependency there)
    from typing_extensions import Unpack

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_SUBFOLDER = "tokenizer"

#: Repositories published in the official layout, and which file each model class loads by default.
OFFICIAL_REPOS: dict[str, dict[str, str]] = {
    "qiuk6/AAR": {"sat": "SAT_d128_lat128.pth", "aar": "AAR_d16_bs2048.pth"},
}
_OFFICIAL_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
#: How long the reachability probe of the Hub may take, and how long its answer is kept.
PROBE_TIMEOUT_S, PROBE_MEMORY_S = 3.0, 30.0
_probes: dict[str, tuple[float, str | None]] = {}


@dataclass(frozen=True)
class Source:
    """A resolved model location.

    Attributes:
        layout: ``"official"`` (a ``.pth`` pickle) or ``"native"`` (config + safetensors).
        path: The ``.pth`` file, or the native folder.
        repo_id: The Hub repository it came from, if any (used to find a paired tokenizer).
        hub_kwargs: The download options, to resolve companion files the same way.
    """

    layout: str
    path: Path
    repo_id: str | None = None
    hub_kwargs: dict[str, Any] | None = None

    def read_config(self) -> dict[str, Any]:
        """The parsed ``config.json`` of a native folder."""
        file = self.path / CONFIG_NAME
        try:
            data = json.loads(file.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.path} has no {CONFIG_NAME}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{file} is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{file} must hold a JSON object (the model config), got {type(data).__name__}")
        return data


class HubKwargs(TypedDict, total=False):
    """The Hugging Face Hub keywords every ``from_pretrained`` of aar takes, defined once here.

    They apply when the name is a Hub repo id (a local path ignores them) and go to
    ``huggingface_hub.hf_hub_download``, so its cache and offline mode apply.

    Attributes:
        revision: Hub branch, tag or commit (default: the main branch).
        cache_dir: Hub cache folder (default: huggingface_hub's).
        local_files_only: Never use the network, only the cache (``HF_HUB_OFFLINE=1`` does the same).
        token: Hub token for private repositories (default: the saved login, if any).
    """

    revision: str | None
    cache_dir: str | os.PathLike | None
    local_files_only: bool
    token: str | bool | None


#: The names of :class:`HubKwargs`, in order.
HUB_KEYWORDS: tuple[str, ...] = tuple(HubKwargs.__annotations__)


def hub_options(**options: Unpack[HubKwargs]) -> dict[str, Any]:
    """The :class:`HubKwargs` given to a ``from_pretrained``, as ``hf_hub_download`` keywords.

    Raises:
        TypeError: a keyword that is not a Hub option (named, with those allowed).
    """
    unknown = [name for name in options if name not in HUB_KEYWORDS]
    if unknown:
        raise TypeError(
            f"unexpected keyword argument(s) {unknown}: the keywords beyond the model's own are the "
            f"Hub options {list(HUB_KEYWORDS)}"
        )
    cache_dir = options.get("cache_dir")
    return {
        "revision": options.get("revision"),
        "cache_dir": None if cache_dir is None else str(cache_dir),
        "local_files_only": bool(options.get("local_files_only", False)),
        "token": options.get("token"),
    }


def _probe(endpoint: str) -> str | None:
    """Why ``endpoint`` cannot be reached (one short HTTP request), or None when it answers.

    The whole probe, name lookup and every address tried included, is bounded by ``PROBE_TIMEOUT_S``
    of wall time: the request runs in a daemon thread that is left behind if it has not answered by
    then (a socket timeout alone applies per address and per operation, which doubled the wait on a
    host with IPv4 and IPv6 addresses). The answer is kept for ``PROBE_MEMORY_S`` seconds, so the
    several files of one model cost one probe. Proxies set in the environment apply, as they do for
    downloads.
    """
    import threading

    now = time.monotonic()
    remembered = _probes.get(endpoint)
    if remembered is not None and now - remembered[0] < PROBE_MEMORY_S:
        return remembered[1]
    answer: list[str | None] = []
    thread = threading.Thread(target=lambda: answer.append(_ask(endpoint)), daemon=True, name="aar-hub-probe")
    thread.start()
    thread.join(PROBE_TIMEOUT_S)
    reason = answer[0] if answer else f"no answer within {PROBE_TIMEOUT_S:g} s"
    _probes[endpoint] = (now, reason)
    return reason


def _ask(endpoint: str) -> str | None:
    """One HEAD request: None if the server answers at all, else why not."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=PROBE_TIMEOUT_S)
        return None
    except urllib.error.HTTPError:  # any HTTP answer means the server is there
        return None
    except (OSError, ValueError) as err:  # URLError, timeouts, refused connections, a bad address
        return str(getattr(err, "reason", err)) or type(err).__name__


def unreachable(hub_kwargs: dict[str, Any]) -> str | None:
    """Why the Hub cannot be reached now, or None (it answers, or offline mode leaves it alone).

    Callers that download through another library (transformers) use it to go to the cache at once.
    """
    from huggingface_hub import constants

    if hub_kwargs.get("local_files_only") or constants.HF_HUB_OFFLINE:
        return None
    return _probe(constants.ENDPOINT)


def download(repo_id: str, filename: str, hub_kwargs: dict[str, Any]) -> Path:
    """``hf_hub_download`` that fails in one line, within seconds, when the Hub is unreachable.

    Unless offline (``local_files_only`` or ``HF_HUB_OFFLINE=1``), the Hub is probed first; if it
    does not answer, the file is taken from the local cache, and only if it is not there does
    :class:`~aar.errors.HubUnreachableError` say what was tried and how to work offline.
    """
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = hub_kwargs.get("local_files_only") or constants.HF_HUB_OFFLINE
    endpoint = constants.ENDPOINT
    reason = unreachable(hub_kwargs)
    try:
        if reason is not None:
            logger.debug("%s does not answer (%s); looking in the local cache", endpoint, reason)
            return Path(hf_hub_download(repo_id, filename, **{**hub_kwargs, "local_files_only": True}))
        return Path(hf_hub_download(repo_id, filename, **hub_kwargs))
    except LocalEntryNotFoundError:
        if offline:
            raise FileNotFoundError(
                f"{filename!r} of Hub repo {repo_id!r} is not in the local cache and offline mode is "
                "on (HF_HUB_OFFLINE=1 or local_files_only=True); download it once online, or pass a "
                "local path"
            ) from None
        raise HubUnreachableError(repo_id, filename, endpoint, reason or "the download failed") from None
    except EntryNotFoundError:
        raise FileNotFoundError(f"Hub repo {repo_id!r} has no file {filename!r}") from None
    except RevisionNotFoundError:
        raise FileNotFoundError(
            f"Hub repo {repo_id!r} has no revision {hub_kwargs.get('revision')!r}"
        ) from None
    except RepositoryNotFoundError:
        raise FileNotFoundError(
            f"{repo_id!r} is neither a local path nor an accessible Hub repository"
        ) from None


def repo_id(name: str | os.PathLike, local_suffixes: tuple[str, ...] = ()) -> str:
    """``name`` as a Hub repo id (``owner/name``), for a name that is no local file or folder.

    Raises:
        FileNotFoundError: ``name`` cannot be a repo id (a relative or absolute path, no single
            ``/``, or ending in one of ``local_suffixes``), so it names a path that does not exist.
    """
    text = str(name)
    if (text.count("/") != 1 or text.startswith((".", "/", "~")) or os.sep in text.replace("/", "", 1)
            or text.endswith(local_suffixes)):
        raise FileNotFoundError(f"no such file or folder: {text!r} (and it is not a Hub repo id)")
    return text


def resolve_file(
    path_or_repo: str | os.PathLike,
    default_filename: str,
    filename: str | None,
    hub_kwargs: dict[str, Any],
    local_suffixes: tuple[str, ...] = (),
    label: str = "checkpoint",
) -> Path:
    """The one checkpoint file named by a local file, a folder holding it, or a Hub repo id.

    For the models whose weights are a single file (CLAP, the metric networks).

    Args:
        path_or_repo: A file, a folder, or a Hub repo id.
        default_filename: The file taken from a folder or repo when ``filename`` is None.
        filename: Another file of the folder or repo.
        hub_kwargs: Download options, as :func:`hub_options` gives them.
        local_suffixes: Endings that mark a name as a local file, never a repo id (e.g. ``".pt"``).
        label: What the file is, for messages (``"CLAP checkpoint"``).

    Raises:
        TypeError: ``path_or_repo`` is not a string or path.
        ValueError: ``filename`` given with a file.
        FileNotFoundError: no such file or folder, a folder without the file, or a Hub file that is
            neither cached nor reachable.
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
            raise FileNotFoundError(f"{local} has no {label} {name!r}; pass filename= to pick another file")
        return local / name
    return download(repo_id(path_or_repo, local_suffixes), name, hub_kwargs)


def resolve(
    name_or_path: str | os.PathLike,
    kind: str,
    *,
    filename: str | None = None,
    **hub_kwargs: Unpack[HubKwargs],
) -> Source:
    """Resolve what ``from_pretrained`` was given.

    Args:
        name_or_path: A ``.pth`` path, a native folder, or a Hub repo id.
        kind: ``"sat"`` or ``"aar"``: which model is wanted (picks a release's default file).
        filename: A file inside the folder or repository to load instead of the default.
        **hub_kwargs: The Hub options (:class:`HubKwargs`).

    Returns:
        The resolved :class:`Source`.

    Raises:
        TypeError: ``name_or_path`` is not a string or path, or an unknown keyword.
        FileNotFoundError: nothing usable exists at that name.
    """
    hub_kwargs = hub_options(**hub_kwargs)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"name_or_path must be a path or a Hub repo id, got {type(name_or_path).__name__}"
        )
    local = Path(name_or_path).expanduser()
    if local.is_file():
        return _local_file(local)
    if local.is_dir():
        if filename is not None:
            return _local_file(local / filename)
        if (local / CONFIG_NAME).is_file():
            return Source("native", local)
        default = OFFICIAL_REPOS["qiuk6/AAR"][kind]
        if (local / default).is_file():
            return Source("official", local / default)
        raise FileNotFoundError(
            f"{local} holds neither {CONFIG_NAME} + {WEIGHTS_NAME} (native layout) nor {default!r} "
            "(official layout); pass filename= to pick a checkpoint"
        )
    name = repo_id(name_or_path)
    if filename is None and name in OFFICIAL_REPOS:
        filename = OFFICIAL_REPOS[name][kind]
    if filename is not None:
        path = download(name, filename, hub_kwargs)
        layout = "official" if path.suffix in _OFFICIAL_SUFFIXES else "native"
        return Source(layout, path if layout == "official" else path.parent, name, hub_kwargs)
    config = download(name, CONFIG_NAME, hub_kwargs)
    download(name, WEIGHTS_NAME, hub_kwargs)
    if Source("native", config.parent).read_config().get("model_type") == "aar":
        for file in (CONFIG_NAME, WEIGHTS_NAME):
            download(name, f"{TOKENIZER_SUBFOLDER}/{file}", hub_kwargs)
    return Source("native", config.parent, name, hub_kwargs)


def _local_file(path: Path) -> Source:
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.name in (CONFIG_NAME, WEIGHTS_NAME):
        return Source("native", path.parent)
    return Source("official", path)


def paired_tokenizer(source: Source) -> str | Path:
    """The tokenizer that goes with a generator source when the caller passed none."""
    if source.layout == "native":
        return source.path / TOKENIZER_SUBFOLDER
    if source.repo_id in OFFICIAL_REPOS:
        return source.repo_id
    sibling = source.path.parent / OFFICIAL_REPOS["qiuk6/AAR"]["sat"]
    if sibling.is_file():
        return sibling
    raise MissingTokenizerError(source.path)
