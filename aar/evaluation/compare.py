"""``compare_sets``: FAD (and paired KL) between two folders of audio, e.g. float32 and int8 generations.

Every number follows an evaluation protocol (``aar.metrics.protocols``; default ``paper``): how files
are prepared for the networks and which reference tool each metric reproduces. KL is audioldm_eval's
paired KL, over files with the same relative path in both folders (audioldm_eval pairs by file name in
flat folders), in its softmax and sigmoid forms; files present on one side only enter FAD alone.

Legend: N files, D embedding size, C classes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aar.evaluation.sets import FileError, Report, classify_files, embed_file_groups, list_audio, stack
from aar.metrics.protocols import Protocol, get_protocol

if TYPE_CHECKING:
    from aar.metrics import AudioClassifier, EmbeddingCache, EmbeddingExtractor


@dataclass(frozen=True)
class ComparisonReport(Report):
    """What :func:`compare_sets` measured.

    Attributes:
        a: First folder.
        b: Second folder.
        files_a: Files of ``a`` embedded.
        files_b: Files of ``b`` embedded.
        fad: Fréchet distance between the two embedding sets (0 for a folder against itself).
        extractor: The extractor's name.
        kl: audioldm_eval's softmax KL(a || b) over paired files, or None.
        kl_pairs: Files paired by relative path for KL.
        kl_unavailable: Why ``kl`` is None (no classifier, no pairs), else None.
        classifier: The classifier's name, or None.
        errors: Files that could not be read.
        kl_sigmoid: audioldm_eval's sigmoid KL (the 527 unnormalised sigmoids), or None for a
            classifier without logits.
        fad_warning: Why the FAD says little (fewer embeddings per set than dimensions), else None.
        protocol: The protocol's name, settings and each metric's reference tool.
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
    kl_sigmoid: float | None = None
    fad_warning: str | None = None
    protocol: dict[str, Any] = field(default_factory=dict)



@dataclass(frozen=True)
class PairedKL:
    """audioldm_eval's two KL readings over paired files.

    Attributes:
        softmax: Mean KL of the softmax outputs, or None.
        sigmoid: Mean KL of the sigmoid outputs, or None (none, or a classifier without logits).
        pairs: Pairs scored.
        unavailable: Why ``softmax`` is None, else None.
        errors: Files that could not be read.
    """

    softmax: float | None
    sigmoid: float | None
    pairs: int
    unavailable: str | None
    errors: list[FileError]


def paired_kl(files_ref, files_est, classifier: AudioClassifier, root_ref=None, root_est=None,
              progress: bool = False, protocol: Protocol | str | None = None) -> PairedKL:
    """audioldm_eval's KL(reference || estimate) between the classifier's outputs on pairs of files.

    Pairs are ``zip(files_ref, files_est)`` when no roots are given; with roots, files with the same
    path relative to their root. Files are prepared and the eps chosen as the protocol says.
    """
    from aar import metrics

    protocol = get_protocol(protocol)
    if root_ref is not None:
        rel_est = {Path(p).relative_to(root_est).as_posix(): Path(p) for p in files_est}
        pairs = [(Path(p), rel_est[k]) for p in files_ref
                 if (k := Path(p).relative_to(root_ref).as_posix()) in rel_est]
    else:
        pairs = list(zip(map(Path, files_ref), map(Path, files_est)))
    if not pairs:
        return PairedKL(None, None, 0, "no files with the same relative path in both folders", [])
    ref = classify_files([r for r, _ in pairs], classifier, progress, "classify", protocol.classifier_loading)
    est = classify_files([e for _, e in pairs], classifier, progress, "classify", protocol.classifier_loading)
    errors = ref.errors + est.errors
    ok_ref, ok_est = set(ref.files), set(est.files)
    keep = [i for i, (r, e) in enumerate(pairs) if r in ok_ref and e in ok_est]
    if not keep:
        return PairedKL(None, None, 0, "no pair could be classified", errors)
    index_ref = {p: i for i, p in enumerate(ref.files)}
    index_est = {p: i for i, p in enumerate(est.files)}
    rows_ref = [index_ref[pairs[i][0]] for i in keep]
    rows_est = [index_est[pairs[i][1]] for i in keep]
    softmax = metrics.kl_divergence(ref.softmax[rows_ref], est.softmax[rows_est], eps=protocol.kl_eps)
    sigmoid = None
    if ref.sigmoid is not None:
        sigmoid = metrics.kl_divergence(ref.sigmoid[rows_ref], est.sigmoid[rows_est], eps=protocol.kl_eps)
    return PairedKL(softmax, sigmoid, len(keep), None, errors)


def fad_warning(emb_a, emb_b) -> str | None:
    """Why a FAD from these embedding sets says little, or None: fewer rows than dimensions in a set
    leave its covariance singular, and the distance then mostly measures the set sizes."""
    n, m, dim = emb_a.shape[0], emb_b.shape[0], emb_a.shape[1]
    if min(n, m) > dim:
        return None
    return (f"FAD from {n} and {m} embeddings of {dim} dimensions: with no more embeddings than "
            "dimensions a covariance is singular and the value says little; use many more clips")


def compare_sets(
    a: str | os.PathLike,
    b: str | os.PathLike,
    extractor: EmbeddingExtractor,
    *,
    classifier: AudioClassifier | None = None,
    cache: EmbeddingCache | None = None,
    embedder=None,
    progress: bool = False,
    protocol: Protocol | str | None = None,
) -> ComparisonReport:
    """FAD between two folders of audio, and KL over files paired by relative path.

    Args:
        a: A folder of audio (searched recursively), the reference side of KL.
        b: Another folder.
        extractor: An ``aar.metrics`` embedding extractor.
        classifier: An ``aar.metrics`` audio classifier, for KL; None leaves KL unavailable.
        cache: An ``aar.metrics.EmbeddingCache``: embeddings computed once per file content.
        embedder: Where embedding runs (see ``aar.evaluation.sets.embed_files``); None: here.
        progress: Show progress bars.
        protocol: An ``aar.metrics.protocols`` protocol or its name (default ``"paper"``).

    Returns:
        A :class:`ComparisonReport`.

    Raises:
        FileNotFoundError: a folder does not exist.
        ValueError: a folder holds no audio, fewer than two of its files could be embedded, or an
            unknown protocol.
    """
    protocol = get_protocol(protocol)
    files_a, files_b = list_audio(a), list_audio(b)
    groups_a, done_a, errors = embed_file_groups(files_a, extractor, cache, progress, "embed a", embedder,
                                                 protocol.loading)
    groups_b, done_b, errors_b = embed_file_groups(files_b, extractor, cache, progress, "embed b", embedder,
                                                   protocol.loading)
    errors += errors_b
    emb_a, emb_b = stack(groups_a, extractor.dim), stack(groups_b, extractor.dim)
    for name, emb in ((a, emb_a), (b, emb_b)):
        if emb.shape[0] < 2:
            raise ValueError(f"FAD needs at least 2 embeddings per set; {name} gave {emb.shape[0]}")
    fad = protocol.frechet_distance(groups_a, groups_b)
    kl = PairedKL(None, None, 0, "no classifier given", [])
    if classifier is not None:
        kl = paired_kl(files_a, files_b, classifier, a, b, progress, protocol)
        errors += kl.errors
    return ComparisonReport(
        a=str(a), b=str(b), files_a=len(done_a), files_b=len(done_b), fad=fad,
        extractor=extractor.name, kl=kl.softmax, kl_pairs=kl.pairs, kl_unavailable=kl.unavailable,
        classifier=None if classifier is None else classifier.name, errors=tuple(errors),
        kl_sigmoid=kl.sigmoid, fad_warning=fad_warning(emb_a, emb_b), protocol=protocol.to_dict(),
    )
