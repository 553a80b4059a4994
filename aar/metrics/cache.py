"""``EmbeddingCache``: per-file embeddings on disk, so re-scoring a set skips the network.

An entry is keyed by the SHA-256 of the audio file's bytes (renaming or moving a file keeps its entry;
editing it makes a new one) and by the extractor: its ``name`` and, where it has one, its
``fingerprint`` (a hash of its weights). Entries are safetensors files written atomically (a temporary
file renamed into place), so an interrupted run never leaves a half-written entry, and several
processes may share one cache folder. An unreadable or mis-shaped entry is recomputed and replaced.

Layout: ``DIRECTORY/<extractor name>-<fingerprint>/<content hash>[-frames].safetensors``.

Legend: D embedding size, n frames (examples) per file, N files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from aar.loading.files import atomic_path
from aar.metrics.extractor import EmbeddingExtractor
from aar.metrics.protocols import PLAIN, AudioLoading

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


def content_hash(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def extractor_key(extractor: EmbeddingExtractor) -> str:
    """The folder name of an extractor's entries: its name, plus its fingerprint where it has one."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(extractor.name)) or "extractor"
    print_ = getattr(extractor, "fingerprint", None)
    return f"{name}-{print_}" if print_ else name


class EmbeddingCache:
    """Embeddings of audio files, computed once per (file content, extractor) and kept in ``directory``.

    Attributes:
        directory: The cache folder (created on first write).
        hits: Entries read from disk since this object was made.
        misses: Entries computed (and written) since this object was made.

    Example:
        >>> cache = EmbeddingCache("~/.cache/aar/embeddings")  # doctest: +SKIP
        >>> cache.embed_file("clip.wav", vggish).shape  # doctest: +SKIP
        torch.Size([128])
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        if not isinstance(directory, (str, os.PathLike)):
            raise TypeError(f"directory must be a path, got {type(directory).__name__}")
        self.directory = Path(directory).expanduser()
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"cache directory {self.directory} exists and is not a folder")
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.directory)!r})"

    def entry_path(
        self, path: str | os.PathLike, extractor: EmbeddingExtractor, *, frames: bool = False,
        loading: AudioLoading | None = None,
    ) -> Path:
        """Where the entry for ``path`` under ``extractor`` lives (whether or not it exists yet)."""
        tag = "" if loading is None else loading.key
        suffix = ("-frames" if frames else "") + (f"-{tag}" if tag else "")
        return self.directory / extractor_key(extractor) / f"{content_hash(path)}{suffix}.safetensors"

    def embed_file(
        self, path: str | os.PathLike, extractor: EmbeddingExtractor, *, frames: bool = False,
        loading: AudioLoading | None = None,
    ) -> torch.Tensor:
        """The embedding of one audio file, from the cache or computed and stored.

        The file is read, averaged to mono and resampled to ``extractor.sample_rate``, or prepared as
        ``loading`` says (an evaluation protocol's; entries of different loadings are kept apart).

        Args:
            path: An audio file soundfile can read.
            extractor: Any :class:`EmbeddingExtractor`.
            frames: Return the per-frame embeddings (``extractor.embed_frames``, e.g. VGGish's 0.96-s
                examples, as the original FAD pools them) instead of one per file.
            loading: How the file becomes the extractor's input (``aar.metrics.protocols.AudioLoading``);
                None: channels averaged, resampled.

        Returns:
            (D,) float32, or (n, D) with ``frames=True``, on the CPU.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file cannot be decoded, or holds NaN or Inf samples.
            TypeError: ``frames=True`` with an extractor that has no ``embed_frames``.
        """
        if frames and not callable(getattr(extractor, "embed_frames", None)):
            raise TypeError(
                f"frames=True needs an extractor with embed_frames(); {extractor.name!r} has none"
            )
        if not Path(path).is_file():
            raise FileNotFoundError(f"audio file not found: {path}")
        entry = self.entry_path(path, extractor, frames=frames, loading=loading)
        cached = self._read(entry, extractor.dim, frames)
        if cached is not None:
            self.hits += 1
            return cached
        rate = extractor.sample_rate
        wav = (loading or PLAIN).load(path, rate)
        with torch.no_grad():
            emb = extractor.embed_frames(wav)[0] if frames else extractor.embed(wav)[0]
        emb = emb.detach().to("cpu", torch.float32).contiguous()
        with atomic_path(entry) as tmp:
            save_file({"embedding": emb}, str(tmp),
                      metadata={"extractor": str(extractor.name), "source": Path(path).name})
        self.misses += 1
        return emb

    def embed_files(
        self,
        paths: Sequence[str | os.PathLike],
        extractor: EmbeddingExtractor,
        *,
        frames: bool = False,
        progress: bool = False,
    ) -> torch.Tensor:
        """Embeddings of many files stacked for ``frechet_distance``.

        Args:
            paths: Audio files.
            extractor: Any :class:`EmbeddingExtractor`.
            frames: Pool per-frame embeddings (see :meth:`embed_file`).
            progress: Show a progress bar.

        Returns:
            (N, D) float32, or (sum of n, D) with ``frames=True``.

        Raises:
            ValueError: ``paths`` is empty.
        """
        if len(paths) == 0:
            raise ValueError("paths is empty; need at least one audio file")
        rows = [self.embed_file(p, extractor, frames=frames)
                for p in tqdm(paths, desc=f"embedding ({extractor.name})", disable=not progress, unit="file")]
        return torch.cat(rows) if frames else torch.stack(rows)

    def _read(self, entry: Path, dim: int, frames: bool) -> torch.Tensor | None:
        if not entry.is_file():
            return None
        try:
            emb = load_file(str(entry))["embedding"]
        except Exception as err:  # a damaged entry is recomputed, never trusted
            logger.warning("ignoring unreadable cache entry %s (%s); recomputing", entry, err)
            return None
        if emb.ndim != (2 if frames else 1) or emb.shape[-1] != dim:
            logger.warning("ignoring cache entry %s of shape %s (expected D=%d); recomputing",
                           entry, tuple(emb.shape), dim)
            return None
        return emb
