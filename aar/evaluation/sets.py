"""Folders of audio as evaluation sets: listing, loading at a model's rate, embeddings, class probabilities.

Legend: N clips, D embedding size, C classes, T samples.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from aar.audio import AUDIO_EXTENSIONS, is_audio_file, resample
from aar.metrics.protocols import PLAIN, AudioLoading

if TYPE_CHECKING:
    from aar.metrics import AudioClassifier, EmbeddingExtractor
class Report:
    """What the reports of ``aar.evaluation`` share (mixed into their dataclasses)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (what ``aar eval ... --json`` writes): nested results become lists
        of dictionaries."""
        return {key: list(v) if isinstance(v, tuple) else v for key, v in asdict(self).items()}


@dataclass(frozen=True)
class FileError:
    """A file that could not be scored (or was left out), and why.

    Attributes:
        path: The file.
        error: One line saying why.
    """

    path: str
    error: str


#: Exceptions that mark one file as bad (recorded and skipped) rather than stopping the run: unreadable,
#: missing, empty, NaN samples. Anything else (out of memory, a bug) stops the run.
FILE_ERRORS = (ValueError, OSError)


def list_audio(folder: str | os.PathLike) -> list[Path]:
    """Audio files under ``folder``, recursively, sorted by their path relative to it.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        ValueError: it holds no audio files.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"audio folder not found: {root}")
    found = sorted((p for p in root.rglob("*") if is_audio_file(p)),
                   key=lambda p: p.relative_to(root).as_posix())
    if not found:
        raise ValueError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {root}")
    return found


def not_audio(folder: str | os.PathLike) -> list[Path]:
    """Files under ``folder`` that :func:`list_audio` leaves out: no extension of
    ``aar.audio.AUDIO_EXTENSIONS`` (the list ``aar.load_audio`` and ``aar tokenize`` use)."""
    root = Path(folder)
    return sorted(p for p in root.rglob("*") if p.is_file() and not is_audio_file(p))


def uses_frames(extractor: EmbeddingExtractor) -> bool:
    """Whether FAD pools the extractor's per-frame embeddings (VGGish's 0.96-s examples, as the original
    FAD does) rather than one embedding per clip: true when it has ``embed_frames``."""
    return callable(getattr(extractor, "embed_frames", None))


def embed_audio(wav_B1T: torch.Tensor, rate: int, extractor: EmbeddingExtractor,
                loading: AudioLoading = PLAIN) -> torch.Tensor:
    """Embeddings (N, D) in float64 of mono audio at ``rate``, prepared for the extractor as ``loading``
    says (resampled; DC removed and padded where it asks): N = B clips, or every frame of every clip
    when :func:`uses_frames`."""
    if loading == PLAIN:
        wav = resample(wav_B1T, rate, extractor.sample_rate)
    else:
        wav = torch.cat([loading.prepare(w, rate, extractor.sample_rate) for w in wav_B1T])
    with torch.no_grad():
        emb = extractor.embed_frames(wav) if uses_frames(extractor) else extractor.embed(wav)
    return emb.detach().to("cpu", torch.float64).reshape(-1, extractor.dim)


def embed_one(path, extractor: EmbeddingExtractor, cache=None,
              loading: AudioLoading = PLAIN) -> torch.Tensor:
    """The embeddings (n, D) float64 of one file: n = 1, or its frames when :func:`uses_frames`.

    Through ``cache.embed_file`` when a cache is given, so a re-run reads them back.
    """
    if cache is not None:
        emb = cache.embed_file(path, extractor, frames=uses_frames(extractor), loading=loading)
    else:
        emb = embed_audio(loading.load(path, extractor.sample_rate), extractor.sample_rate, extractor)
    return torch.as_tensor(emb).detach().to("cpu", torch.float64).reshape(-1, extractor.dim)


def embed_locally(paths, extractor: EmbeddingExtractor, cache=None, loading: AudioLoading = PLAIN):
    """Embed files one by one in this process: yields each file's (n, D) embeddings or its FileError."""
    for path in paths:
        try:
            yield embed_one(path, extractor, cache, loading)
        except FILE_ERRORS as err:
            yield FileError(str(path), describe(err))


def embed_file_groups(paths, extractor: EmbeddingExtractor, cache=None, progress: bool = False,
                      desc: str = "embed", embedder=None, loading: AudioLoading = PLAIN
                      ) -> tuple[list[torch.Tensor], list[Path], list[FileError]]:
    """Embed every file, skipping (and recording) those that cannot be read; one tensor per file.

    Args:
        paths: Audio files.
        extractor: The embedding model.
        cache: An ``aar.metrics.EmbeddingCache``, or None to embed every file afresh.
        progress: Show a progress bar.
        desc: Its label.
        embedder: Where the work runs: ``embedder(paths, extractor, cache, loading)`` yielding what
            :func:`embed_locally` yields, in order (``aar.evaluation.distributed.ray_embedder`` runs
            on Ray); None: :func:`embed_locally`.
        loading: How each file is prepared for the extractor (the protocol's).

    Returns:
        ``(one (n, D) float64 tensor per file embedded, the files embedded, errors of the files that
        failed)``; n is 1, or the file's frames for an extractor that has them (:func:`uses_frames`).
    """
    from tqdm.auto import tqdm

    paths = list(paths)
    groups, done, errors = [], [], []
    results = (embedder or embed_locally)(paths, extractor, cache, loading)
    # the bar first: zip then asks it for one more item, which lets it count the last file and close
    for result, path in zip(tqdm(results, total=len(paths), desc=desc, unit="file", disable=not progress),
                            paths):
        if isinstance(result, FileError):
            errors.append(result)
        else:
            groups.append(result)
            done.append(Path(path))
    return groups, done, errors


def stack(groups: list[torch.Tensor], dim: int) -> torch.Tensor:
    """Per-file embeddings stacked into one (N, D) float64 matrix (empty when there are none)."""
    return torch.cat(groups) if groups else torch.empty(0, dim, dtype=torch.float64)


def embed_files(paths, extractor: EmbeddingExtractor, cache=None, progress: bool = False,
                desc: str = "embed", embedder=None, loading: AudioLoading = PLAIN
                ) -> tuple[torch.Tensor, list[Path], list[FileError]]:
    """:func:`embed_file_groups` with the files' embeddings stacked: ``(embeddings (N, D) float64, the
    files embedded, errors)``. With an extractor that has per-frame embeddings (:func:`uses_frames`),
    each file gives one row per frame."""
    groups, done, errors = embed_file_groups(paths, extractor, cache, progress, desc, embedder, loading)
    return stack(groups, extractor.dim), done, errors


@dataclass(frozen=True)
class ClassOutputs:
    """A classifier's outputs on a set of files, in the readouts the KL and ISc of audioldm_eval use.

    Attributes:
        softmax: (N, C) float64 class distributions: the softmax of the logits (or, for a classifier
            without ``logits``, its ``probs``, which must then be distributions).
        sigmoid: (N, C) float64 sigmoids of the logits, or None for a classifier without ``logits``.
        files: The files classified, in order.
        errors: The files that could not be read.
    """

    softmax: torch.Tensor
    sigmoid: torch.Tensor | None
    files: list[Path]
    errors: list[FileError]


def classify_files(paths, classifier: AudioClassifier, progress: bool = False, desc: str = "classify",
                   loading: AudioLoading = PLAIN) -> ClassOutputs:
    """The classifier's outputs on every readable file, each prepared as ``loading`` says."""
    from tqdm.auto import tqdm

    has_logits = callable(getattr(classifier, "logits", None))
    rows, done, errors = [], [], []
    for path in tqdm(list(paths), desc=desc, unit="file", disable=not progress):
        try:
            wav = loading.load(path, classifier.sample_rate)
            with torch.no_grad():
                out = classifier.logits(wav) if has_logits else classifier.probs(wav)
        except FILE_ERRORS as err:
            errors.append(FileError(str(path), describe(err)))
            continue
        rows.append(out.detach().to("cpu", torch.float64).reshape(1, classifier.num_classes))
        done.append(Path(path))
    values = torch.cat(rows) if rows else torch.empty(0, classifier.num_classes, dtype=torch.float64)
    if has_logits:
        return ClassOutputs(values.softmax(-1), values.sigmoid(), done, errors)
    return ClassOutputs(values, None, done, errors)


def describe(err: BaseException) -> str:
    """One line for a recorded error."""
    return " ".join(str(err).split()) or type(err).__name__
