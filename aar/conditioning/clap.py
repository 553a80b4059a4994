"""``ClapEncoder``: audio and text to the 512-d CLAP embeddings that condition the AAR generator.

Two backends give embeddings in the same space: laion-clap with its
``music_speech_audioset_epoch_15_esc_89.98.pt`` checkpoint (the default), and transformers with
``laion/larger_clap_general``, which is the conversion of that checkpoint and what the official
scripts ran. Both packages are optional (``pip install "aar-audio[clap]"``) and imported only when a
backend is loaded.

Legend: B batch, C channels, T samples (at 48 kHz after resampling), W windows per clip,
N clips or texts in one backend call, D embedding size (512).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from aar.audio import as_audio_batch, check_sample_rate, resample, to_mono
from aar.conditioning.backends import (
    LAION_FILENAME,
    LAION_REPO,
    TRANSFORMERS_REPO,
    LaionClapBackend,
    TransformersClapBackend,
    require_backend,
)
from aar.errors import HubUnreachableError, WrongModelKindError, check_positive_int, check_texts
from aar.loading import hub
from aar.loading.hub import HubKwargs, Unpack
from aar.loading.native import loading_request
from aar.loading.official import folder_kind

logger = logging.getLogger(__name__)

#: Rate CLAP reads audio at.
CLAP_SAMPLE_RATE = 48_000
#: Size of every embedding.
EMBEDDING_DIM = 512
#: A trailing window shorter than this (1 s) is left out when the clip has a full window.
MIN_TAIL_SAMPLES = 48_000
BACKENDS = ("laion-clap", "transformers")


class ClapBackend(Protocol):
    """What :class:`ClapEncoder` needs from a backend; results need not be normalised."""

    name: str
    device: torch.device
    max_samples: int  # the longest clip embedded as a whole, without cropping

    def embed_clips(self, clips_NT: torch.Tensor) -> torch.Tensor: ...  # (N, T) -> (N, D)

    def embed_texts(self, texts: list[str]) -> torch.Tensor: ...  # N texts -> (N, D)


class ClapEncoder:
    """CLAP audio and text embeddings: (B, 512) float32 unit vectors, deterministic.

    Audio of any rate and channel count is averaged to mono and resampled to 48 kHz with
    torchaudio's sinc resampler. CLAP itself embeds at most 10 s (480000 samples) and, given more,
    would crop at a random offset. To use the whole clip and stay deterministic, a clip longer than
    10 s is cut into consecutive 10-s windows starting at sample 0; the last window is shorter, and
    is embedded as the backend embeds any short clip (repeated, then zero-padded to 10 s), unless it
    is under 1 s, in which case it is left out. Each window gives a unit vector; the clip's
    embedding is their mean, renormalised to unit length. Windows count equally. A clip of 10 s or
    less is one window, however short.

    With laion-clap, audio goes in with ``use_tensor=True``, so it is not rounded through int16.
    With transformers, the ``is_longer`` flag is always false (no window exceeds 10 s), so the
    feature extractor's random choice never matters.

    Args:
        backend: A loaded backend; use :meth:`from_pretrained` rather than building one.

    Example:
        >>> clap = ClapEncoder.from_pretrained(device="cuda")  # doctest: +SKIP
        >>> stereo = torch.randn(2, 44_100 * 30)  # (C, T): one 30-s clip, three windows
        >>> clap.embed_audio(stereo, sample_rate=44_100).shape  # doctest: +SKIP
        torch.Size([1, 512])
        >>> clap.embed_text(["warm analog synth pad", "drum break"]).shape  # doctest: +SKIP
        torch.Size([2, 512])
    """

    sample_rate = CLAP_SAMPLE_RATE
    embedding_dim = EMBEDDING_DIM

    def __init__(self, backend: ClapBackend):
        self._backend = backend

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike | None = None,
        *,
        backend: str = "laion-clap",
        filename: str | None = None,
        device: torch.device | str | None = None,
        **hub_kwargs: Unpack[HubKwargs],
    ) -> ClapEncoder:
        """Load a CLAP model from the Hugging Face Hub or from local files.

        Args:
            name_or_path: What to load; None picks the backend's release. With ``"laion-clap"``:
                a local ``.pt`` file, a folder holding ``filename``, or a Hub repo id (default
                ``"lukewys/laion_clap"``). With ``"transformers"``: a Hub repo id or a folder
                written by ``save_pretrained`` (default ``"laion/larger_clap_general"``).
            backend: ``"laion-clap"`` or ``"transformers"``.
            filename: laion-clap only: the checkpoint inside the folder or repo (default
                ``"music_speech_audioset_epoch_15_esc_89.98.pt"``).
            device: Where the model runs and embeddings are returned (default CPU).
            **hub_kwargs: The Hub options of :class:`aar.loading.hub.HubKwargs` (``revision``, ``cache_dir``,
                ``local_files_only``, ``token``).

        Returns:
            The encoder, in eval mode.

        Raises:
            ValueError: unknown ``backend``, or ``filename`` given for transformers.
            TypeError: an unknown keyword.
            MissingExtraError: the backend's package is missing (``pip install "aar-audio[clap]"``);
                checked first, before any download. An ``ImportError``.
            FileNotFoundError: no checkpoint at ``name_or_path``, or not cached when offline.
            HubUnreachableError: the Hub does not answer and the checkpoint is not cached.
            WrongModelKindError: a tokenizer or generator checkpoint or folder.
            CheckpointError: the laion-clap file is unreadable or carries pickled objects.

        Example:
            >>> clap = ClapEncoder.from_pretrained()  # doctest: +SKIP
            >>> clap = ClapEncoder.from_pretrained("ckpt/clap.pt", device="cuda")  # doctest: +SKIP
            >>> clap = ClapEncoder.from_pretrained(backend="transformers")  # doctest: +SKIP
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        request = loading_request(device=device, **hub_kwargs)
        cls.check_installed(backend)  # after the argument checks, before any lookup or download
        device, hub_kwargs = request.device or torch.device("cpu"), request.hub_kwargs
        if backend == "transformers":
            if filename is not None:
                raise ValueError(
                    f"filename={filename!r} applies to backend='laion-clap' only; the transformers "
                    "backend loads a folder or Hub repo"
                )
            source = TRANSFORMERS_REPO if name_or_path is None else name_or_path
            _refuse_aar_folder(source)
            return cls(_load_transformers(source, device, hub_kwargs))
        checkpoint = _laion_checkpoint(name_or_path, filename, hub_kwargs)
        return cls(LaionClapBackend.load(checkpoint, device))

    @staticmethod
    def check_installed(backend: str = "laion-clap") -> None:
        """Fail now, in one line, if ``backend``'s package is missing; nothing is imported or downloaded.

        Call it before loading anything else when CLAP will be needed later (the CLI does).

        Raises:
            ValueError: an unknown ``backend``.
            MissingExtraError: its package is not installed (``pip install "aar-audio[clap]"``).

        Example:
            >>> ClapEncoder.check_installed("transformers")  # doctest: +SKIP
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        require_backend(backend)

    @property
    def backend(self) -> str:
        """``"laion-clap"`` or ``"transformers"``."""
        return self._backend.name

    @property
    def device(self) -> torch.device:
        """Where the model runs; embeddings are returned here."""
        return self._backend.device

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.backend!r}, device={str(self.device)!r})"

    @torch.no_grad()
    def embed_audio(self, wav, sample_rate: int, *, batch_size: int = 16) -> torch.Tensor:
        """Embed audio clips.

        Args:
            wav: A tensor or numpy array shaped (T,), (C, T) with C = 1 or 2, or (B, C, T) (other
                2-D shapes raise; see ``aar.audio.as_audio_batch``): float audio in [-1, 1],
                or int16/int32 PCM. Channels are averaged.
            sample_rate: Rate of ``wav`` in Hz; it is resampled to 48 kHz.
            batch_size: Windows per model call (bounds memory on long or many clips).

        Returns:
            (B, 512) float32 unit vectors on :attr:`device`, one per clip.

        Raises:
            TypeError: ``wav`` is not a tensor or array, or has an unsupported dtype.
            ValueError: wrong rank, no samples, NaN/Inf values, a non-positive ``sample_rate`` or
                ``batch_size``.
        """
        wav_BCT = as_audio_batch(wav)
        sample_rate = check_sample_rate(sample_rate)
        _check_batch_size(batch_size)
        mono_B1T = to_mono(wav_BCT).to(self.device, torch.float32)
        wav_BT = resample(mono_B1T, sample_rate, CLAP_SAMPLE_RATE)[:, 0]
        B, T = wav_BT.shape
        window = self._backend.max_samples
        full, tail = divmod(T, window)
        if full == 0:
            emb_BWD = self._embed(self._backend.embed_clips, wav_BT, batch_size)[:, None]
        else:
            windows_NT = wav_BT[:, : full * window].reshape(B * full, window)  # item-major
            parts = [self._embed(self._backend.embed_clips, windows_NT, batch_size).reshape(B, full, -1)]
            if tail >= MIN_TAIL_SAMPLES:
                tail_BT = wav_BT[:, full * window :]
                parts.append(self._embed(self._backend.embed_clips, tail_BT, batch_size)[:, None])
            emb_BWD = torch.cat(parts, dim=1)
            logger.debug("embedded %d clip(s) as %d window(s) each", B, emb_BWD.shape[1])
        return F.normalize(emb_BWD.mean(dim=1), dim=-1)

    @torch.no_grad()
    def embed_text(self, text: str | Sequence[str], *, batch_size: int = 64) -> torch.Tensor:
        """Embed text prompts.

        Args:
            text: One string or a non-empty list of strings (CLAP reads at most 77 tokens).
            batch_size: Texts per model call.

        Returns:
            (B, 512) float32 unit vectors on :attr:`device`; B is 1 for a single string.

        Raises:
            TypeError: ``text`` is not a string or a list/tuple of strings.
            ValueError: an empty list, or a non-positive ``batch_size``.
        """
        texts = check_texts("text", text)
        _check_batch_size(batch_size)
        return self._embed(self._backend.embed_texts, texts, batch_size)

    def _embed(self, fn: Callable[[Any], torch.Tensor], items, batch_size: int) -> torch.Tensor:
        """Run ``fn`` on chunks of ``items``: N items -> (N, D) unit vectors."""
        chunks = []
        for start in range(0, len(items), batch_size):
            part = items[start : start + batch_size]
            emb_ND = fn(part)
            if tuple(emb_ND.shape) != (len(part), EMBEDDING_DIM):
                raise RuntimeError(
                    f"the {self.backend} backend returned shape {tuple(emb_ND.shape)}; expected "
                    f"({len(part)}, {EMBEDDING_DIM})"
                )
            chunks.append(F.normalize(emb_ND.detach().to(self.device, torch.float32), dim=-1))
        return torch.cat(chunks)


def _check_batch_size(batch_size) -> None:
    check_positive_int("batch_size", batch_size)


def _laion_checkpoint(
    name_or_path: str | os.PathLike | None, filename: str | None, hub_kwargs: dict[str, Any]
) -> Path:
    """Local path of the laion-clap checkpoint: a file, a file in a folder, or a Hub download."""
    if name_or_path is None:
        return hub.download(LAION_REPO, filename or LAION_FILENAME, hub_kwargs)
    return hub.resolve_file(name_or_path, LAION_FILENAME, filename, hub_kwargs, (".pt",), "CLAP checkpoint")


def _refuse_aar_folder(source: str | os.PathLike) -> None:
    """Refuse, by name, a native tokenizer or generator folder given to the transformers backend."""
    config = Path(source).expanduser() / hub.CONFIG_NAME
    if not config.is_file():
        return
    kind = folder_kind(hub.Source("native", config.parent).read_config())
    if kind in ("sat", "aar"):
        raise WrongModelKindError(config.parent, kind, "clap")


def _load_transformers(source: str | os.PathLike, device: torch.device, hub_kwargs: dict[str, Any]):
    """The transformers backend; from the cache alone, or one line, when the Hub does not answer."""
    reason = None if Path(source).expanduser().is_dir() else hub.unreachable(hub_kwargs)
    if reason is None:
        return TransformersClapBackend.load(source, device, hub_kwargs)
    try:
        return TransformersClapBackend.load(source, device, {**hub_kwargs, "local_files_only": True})
    except OSError:  # transformers' "not in the cache" (the network was never tried)
        from huggingface_hub import constants

        raise HubUnreachableError(str(source), hub.CONFIG_NAME, constants.ENDPOINT, reason) from None
