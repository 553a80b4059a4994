"""``compare_sets``: FAD (and paired KL) between two folders of audio, e.g. float32 and int8 generations.

KL follows AudioLDM's evaluation in its paired mode: the classifier's class probabilities of files with
the same relative path in both folders are compared; files present on one side only enter FAD alone.

Legend: N files, D embedding size, C classes.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._sets import FileError, classify_files, embed_files, list_audio

if TYPE_CHECKING:
    from ..metrics import AudioClassifier, EmbeddingCache, EmbeddingExtractor


@dataclass(frozen=True)
class ComparisonReport:
    """What :func:`compare_sets` measured.

    Attributes:
        a: First folder.
        b: Second folder.
        files_a: Files of ``a`` embedded.
        files_b: Files of ``b`` embedded.
        fad: Fréchet distance between the two embedding sets (0 for a folder against itself).
        extractor: The extractor's name.
        kl: Mean KL divergence KL(a || b) of the classifier's probabilities over paired files, or None.
        kl_pairs: Files paired by relative path for KL.
        kl_unavailable: Why ``kl`` is None (no classifier, no pairs), else None.
        classifier: The classifier's name, or None.
        errors: Files that could not be read.
    """

    a: str
    b: str
    files_a: int
    files_b: int
    fad: float
    extractor: str
    kl: float | None = None
    kl_pairs: int = 0
    kl_unavailable: str | None = None
    classifier: str | None = None
    errors: tuple[FileError, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (what ``aar eval compare --json`` writes)."""
        out = asdict(self)
        out["errors"] = [asdict(e) for e in self.errors]
        return out


def paired_kl(files_ref, files_est, classifier: AudioClassifier, root_ref=None, root_est=None,
              progress: bool = False) -> tuple[float | None, int, str | None, list[FileError]]:
    """KL between the classifier's outputs on pairs of files.

    Pairs are ``zip(files_ref, files_est)`` when no roots are given; with roots, files with the same
    path relative to their root.

    Returns:
        ``(kl or None, pairs, why it is None or None, errors)``.
    """
    from .. import metrics

    if root_ref is not None:
        rel_est = {Path(p).relative_to(root_est).as_posix(): Path(p) for p in files_est}
        pairs = [(Path(p), rel_est[k]) for p in files_ref
                 if (k := Path(p).relative_to(root_ref).as_posix()) in rel_est]
    else:
        pairs = list(zip(map(Path, files_ref), map(Path, files_est)))
    if not pairs:
        return None, 0, "no files with the same relative path in both folders", []
    probs_ref, done_ref, errors = classify_files([r for r, _ in pairs], classifier, progress, "classify")
    probs_est, done_est, errors_est = classify_files([e for _, e in pairs], classifier, progress, "classify")
    errors += errors_est
    ok_ref, ok_est = set(done_ref), set(done_est)
    keep = [i for i, (r, e) in enumerate(pairs) if r in ok_ref and e in ok_est]
    if not keep:
        return None, 0, "no pair could be classified", errors
    index_ref = {p: i for i, p in enumerate(done_ref)}
    index_est = {p: i for i, p in enumerate(done_est)}
    rows_ref = probs_ref[[index_ref[pairs[i][0]] for i in keep]]
    rows_est = probs_est[[index_est[pairs[i][1]] for i in keep]]
    return float(metrics.kl_divergence(rows_ref, rows_est)), len(keep), None, errors


def compare_sets(
    a: str | os.PathLike,
    b: str | os.PathLike,
    extractor: EmbeddingExtractor,
    *,
    classifier: AudioClassifier | None = None,
    cache: EmbeddingCache | None = None,
    embedder=None,
    progress: bool = False,
) -> ComparisonReport:
    """FAD between two folders of audio, and KL over files paired by relative path.

    Args:
        a: A folder of audio (searched recursively), the reference side of KL.
        b: Another folder.
        extractor: An ``aar.metrics`` embedding extractor.
        classifier: An ``aar.metrics`` audio classifier, for KL; None leaves KL unavailable.
        cache: An ``aar.metrics.EmbeddingCache``: embeddings computed once per file content.
        embedder: Where embedding runs (see ``aar.evaluation._sets.embed_files``); None: here.
        progress: Show progress bars.

    Returns:
        A :class:`ComparisonReport`.

    Raises:
        FileNotFoundError: a folder does not exist.
        ValueError: a folder holds no audio, or fewer than two of its files could be embedded.
    """
    from .. import metrics

    files_a, files_b = list_audio(a), list_audio(b)
    emb_a, done_a, errors = embed_files(files_a, extractor, cache, progress, "embed a", embedder)
    emb_b, done_b, errors_b = embed_files(files_b, extractor, cache, progress, "embed b", embedder)
    errors += errors_b
    for name, emb in ((a, emb_a), (b, emb_b)):
        if emb.shape[0] < 2:
            raise ValueError(f"FAD needs at least 2 embeddings per set; {name} gave {emb.shape[0]}")
    fad = float(metrics.frechet_distance(emb_a, emb_b))
    kl, pairs, why = None, 0, "no classifier given"
    if classifier is not None:
        kl, pairs, why, more = paired_kl(files_a, files_b, classifier, a, b, progress)
        errors += more
    return ComparisonReport(
        a=str(a), b=str(b), files_a=len(done_a), files_b=len(done_b), fad=fad,
        extractor=extractor.name, kl=kl, kl_pairs=pairs, kl_unavailable=why,
        classifier=None if classifier is None else classifier.name, errors=tuple(errors),
    )
