"""What the metric networks (VGGish, PANNs CNN14) share: loading released weights and a fingerprint.

A subclass names its default checkpoint file, its table from published key names to its own
(``key_rules``) and the published tensors it drops or rebuilds itself (``dropped``); loading reads
the file safely (:mod:`aar.metrics._weights`), maps the keys and loads them strictly.
"""

from __future__ import annotations

import os
import re
from typing import ClassVar, TypeVar

import torch
from torch import nn

from aar.loading.digest import weights_digest
from aar.loading.hub import HubKwargs, Unpack, resolve_file
from aar.loading.native import loading_request
from aar.loading.official import rename
from aar.metrics import _weights

Network = TypeVar("Network", bound="PretrainedNetwork")


class PretrainedNetwork(nn.Module):
    """Base of the metric networks: ``from_pretrained`` from released weights, and a weights hash.

    Calling a subclass builds it with random weights; :meth:`from_pretrained` loads released ones.

    Attributes:
        checkpoint_name: The file loaded from a folder or Hub repo when no ``filename`` is given.
        key_rules: Published key -> aar key, as ``(pattern, replacement)`` pairs.
        dropped: Published keys that are not loaded (tensors aar computes itself).
        weights_source: Where the published weights can be downloaded (named when a file is missing).
    """

    checkpoint_name: ClassVar[str]
    #: Where the published weights are, for the message about a missing file.
    weights_source: ClassVar[str] = "see docs/evaluation.md"
    key_rules: ClassVar[tuple[tuple[str, str], ...]]
    dropped: ClassVar[re.Pattern]

    def __init__(self) -> None:
        super().__init__()
        self._fingerprint: str | None = None

    @classmethod
    def from_pretrained(
        cls: type[Network],
        path_or_repo: str | os.PathLike,
        *,
        filename: str | None = None,
        device: torch.device | str | None = None,
        **hub_kwargs: Unpack[HubKwargs],
    ) -> Network:
        """Load weights from a local file, a folder holding ``filename``, or a Hub repo id.

        Args:
            path_or_repo: A ``.pth``/``.safetensors`` file, a folder, or a Hub repo id.
            filename: The file inside the folder or repo (default: the class's ``checkpoint_name``).
            device: Where the network runs (default CPU).
            **hub_kwargs: The Hub options of :class:`aar.loading.hub.HubKwargs` (``revision``, ``cache_dir``,
                ``local_files_only``, ``token``).

        Returns:
            The network in eval mode.

        Raises:
            FileNotFoundError: no file there, or not cached when offline.
            CheckpointError: unreadable, pickled objects, or keys/shapes that do not fit (named).
            ValueError: an unknown ``device``.
            TypeError: an unknown keyword.
        """
        request = loading_request(device=device, **hub_kwargs)
        try:
            path = resolve_file(path_or_repo, cls.checkpoint_name, filename, request.hub_kwargs)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{err}. The published weights: {cls.weights_source}") from None
        state = rename(_weights.read_weights(path), cls.key_rules, cls.dropped, str(path))
        with torch.device("meta"):  # no random initialisation: every tensor comes from the file
            model = cls.variant(state)()
        _weights.load_into(model, state, str(path))
        return model if request.device is None else model.to(request.device)

    @classmethod
    def variant(cls, state: dict) -> type[PretrainedNetwork]:
        """The class to build for a (renamed) state dict: ``cls`` unless a subclass tells variants apart."""
        return cls

    @property
    def fingerprint(self) -> str:
        """A hash of the weights (computed once), part of the embedding-cache key."""
        if self._fingerprint is None:
            self._fingerprint = weights_digest(self)
        return self._fingerprint

    def reset_fingerprint(self) -> None:
        """Forget the cached fingerprint (call after changing the weights in place)."""
        self._fingerprint = None
