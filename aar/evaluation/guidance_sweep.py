"""``evaluate_generation``: generate an evaluation set per guidance scale and score FAD, ISc and KL.

The paper sweeps classifier-free guidance and plots FAD and KL against the Inception Score. Each
guidance value gets the same conditions and the same seeds, so the sweep compares like with like:
sample ``j`` of condition ``i`` is drawn with seed ``seed + i * num_samples + j`` (what
``aar generate --seed`` would use for it), and its audio goes to ``cfg_<value>/<i>_<j>.wav``.
Samples are drawn ``batch_size`` at a time, one seed per row, which writes exactly the audio of one
call per sample (``generate_rows``).

Legend: N conditions, D condition size, C classes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from aar.audio import write_audio
from aar.evaluation.compare import fad_warning, paired_kl
from aar.evaluation.sets import FileError, Report, classify_files, embed_file_groups, list_audio, stack
from aar.metrics.protocols import Protocol, get_protocol

if TYPE_CHECKING:
    from aar.generator import AARGenerator
    from aar.metrics import AudioClassifier, EmbeddingCache, EmbeddingExtractor

#: Samples drawn together by default; any value writes the same audio.
DEFAULT_BATCH_SIZE = 4


@dataclass(frozen=True)
class GenerationJob:
    """One sample to draw: its condition row, guidance, seed and output file."""

    condition: int
    sample: int
    cfg: float
    seed: int
    path: str


@dataclass(frozen=True)
class GuidancePoint:
    """The scores of the set generated at one guidance value.

    Attributes:
        cfg: The guidance value.
        folder: Where its audio is.
        samples: Clips generated.
        fad: Fréchet distance to the reference set's embeddings.
        inception_score: audioldm_eval's ISc (mean over the protocol's splits), or None.
        kl: audioldm_eval's softmax KL(reference clip || generated clip) over paired clips, or None.
        kl_unavailable: Why ``kl`` is None, else None.
        inception_score_std: The spread of ISc over the splits (``numpy.std``), or None.
        isc_unavailable: Why ``inception_score`` is None, else None.
        kl_sigmoid: audioldm_eval's sigmoid KL, or None.
        fad_warning: Why the FAD says little (too few clips for the embedding size), else None.
    """

    cfg: float
    folder: str
    samples: int
    fad: float
    inception_score: float | None
    kl: float | None
    kl_unavailable: str | None
    inception_score_std: float | None = None
    isc_unavailable: str | None = None
    kl_sigmoid: float | None = None
    fad_warning: str | None = None


@dataclass(frozen=True)
class GenerationReport(Report):
    """What :func:`evaluate_generation` measured: one :class:`GuidancePoint` per guidance value.

    Attributes:
        reference: The reference folder.
        reference_files: Its files embedded.
        conditions: Conditions generated from.
        num_samples: Samples per condition and guidance value.
        seed: The first seed.
        sampling: top_k, top_p and temperature.
        extractor: The extractor's name.
        classifier: The classifier's name, or None.
        points: One per guidance value, in the order given.
        errors: Reference files that could not be read.
        protocol: The protocol's name, settings and each metric's reference tool.
        precision: The arithmetic the generator ran ("fp32", "bf16" or "int8"; ``gen.precision``).
    """

    reference: str
    reference_files: int
    conditions: int
    num_samples: int
    seed: int
    sampling: dict[str, Any]
    extractor: str
    classifier: str | None
    points: tuple[GuidancePoint, ...]
    errors: tuple[FileError, ...] = field(default=())
    protocol: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"



def cfg_folder(cfg: float) -> str:
    """The sub-folder of one guidance value: ``cfg_4``, ``cfg_2.5``, ``cfg_-1``."""
    return f"cfg_{cfg:g}"


def plan_jobs(num_conditions: int, cfgs, num_samples: int, seed: int, output_dir) -> list[GenerationJob]:
    """Every sample of the sweep, guidance-major; seeds repeat across guidance values."""
    wi, wj = len(str(num_conditions - 1)), len(str(num_samples - 1))
    return [
        GenerationJob(i, j, float(c), seed + i * num_samples + j,
                      str(Path(output_dir) / cfg_folder(c) / f"{i:0{wi}d}_{j:0{wj}d}.wav"))
        for c in cfgs for i in range(num_conditions) for j in range(num_samples)
    ]


def generate_rows(generator: AARGenerator, clap_ND: torch.Tensor, cfgs, seeds, knobs: dict,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[torch.Tensor]:
    """The (1, T) audio of each row, in order: condition ``clap_ND[k]``, guidance ``cfgs[k]``, seed
    ``seeds[k]``.

    Runs of rows with one guidance value are drawn together, up to ``batch_size`` per call, each row
    with its own seed: every row is what ``generator.generate`` returns for it alone, to the bit.
    """
    k = 0
    while k < len(cfgs):
        n = 1
        while n < batch_size and k + n < len(cfgs) and cfgs[k + n] == cfgs[k]:
            n += 1
        wav_n1T = generator.generate(clap_ND[k:k + n], cfg=float(cfgs[k]),
                                     seed=[int(s) for s in seeds[k:k + n]], **knobs)
        yield from wav_n1T.cpu().unbind(0)
        k += n


def _check(cfgs, num_samples, seed, batch_size) -> list[float]:
    cfgs = [cfgs] if isinstance(cfgs, (int, float)) else list(cfgs)
    if not cfgs or any(isinstance(c, bool) or not isinstance(c, (int, float)) for c in cfgs):
        raise ValueError(f"cfgs must be one or more numbers, got {cfgs!r}")
    if len(set(cfgs)) != len(cfgs):
        raise ValueError(f"cfgs must not repeat a value, got {cfgs!r}")
    for name, value, least in (("num_samples", num_samples, 1), ("seed", seed, 0),
                               ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    return [float(c) for c in cfgs]


def evaluate_generation(
    generator: AARGenerator,
    conditions,
    reference: str | os.PathLike,
    output_dir: str | os.PathLike,
    extractor: EmbeddingExtractor,
    *,
    cfgs=(4.0,),
    num_samples: int = 1,
    seed: int = 0,
    classifier: AudioClassifier | None = None,
    condition_audio=None,
    cache: EmbeddingCache | None = None,
    top_k: int | None = 200,
    top_p: float | None = 0.95,
    temperature: float = 1.0,
    runner=None,
    embedder=None,
    progress: bool = False,
    protocol: Protocol | str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> GenerationReport:
    """Generate ``num_samples`` clips per condition at each guidance value and score each set.

    Args:
        generator: The AAR generator.
        conditions: CLAP vectors (N, D) (or (D,)).
        reference: Folder of reference audio; FAD compares each generated set with its embeddings.
        output_dir: Where the generated audio goes (``cfg_<value>/<i>_<j>.wav``).
        extractor: An ``aar.metrics`` embedding extractor.
        cfgs: One guidance value or several (the sweep).
        num_samples: Clips per condition and guidance value.
        seed: First seed (sample j of condition i uses ``seed + i * num_samples + j``).
        classifier: An ``aar.metrics`` audio classifier, for ISc and KL.
        condition_audio: N audio files the conditions were embedded from; given, KL pairs each
            generated clip with the file of its condition. Otherwise KL is unavailable.
        cache: An ``aar.metrics.EmbeddingCache`` for the reference and generated files.
        top_k: Sampling knob (see ``AARGenerator.generate_codes``).
        top_p: Sampling knob.
        temperature: Sampling knob.
        runner: Where generation runs: a callable ``runner(jobs, clap_ND, knobs)`` yielding each job's
            (1, T) audio in order; None runs in this process (``aar.evaluation.distributed.ray_runner``
            runs on Ray).
        embedder: Where embedding runs (see ``aar.evaluation.sets.embed_files``); None: here.
        progress: Show progress bars.
        protocol: An ``aar.metrics.protocols`` protocol or its name (default ``"paper"``): how clips
            are prepared for the networks, ISc's splits and seed, KL's eps.
        batch_size: Samples generated together in this process (``generate_rows``); the audio is the
            same for any value, only the speed changes.

    Returns:
        A :class:`GenerationReport`.

    Raises:
        FileNotFoundError: ``reference`` is not a folder.
        ValueError: bad arguments, no reference audio, or fewer than 2 clips in a set (FAD needs 2).
    """
    from tqdm.auto import tqdm

    cfgs = _check(cfgs, num_samples, seed, batch_size)
    protocol = get_protocol(protocol)
    ref_files = list_audio(reference)  # a bad folder fails before any generation
    clap_ND = generator.clap_vectors(conditions)
    N = clap_ND.shape[0]
    if condition_audio is not None and len(condition_audio) != N:
        raise ValueError(f"condition_audio must name one file per condition ({N}), "
                         f"got {len(condition_audio)}")
    if N * num_samples < 2:
        raise ValueError(f"FAD needs at least 2 clips per guidance value; got {N} condition(s) x "
                         f"{num_samples} sample(s)")
    knobs = dict(top_k=top_k, top_p=top_p, temperature=temperature)
    jobs = plan_jobs(N, cfgs, num_samples, seed, output_dir)
    if runner is None:
        def runner(jobs, clap_ND, knobs):
            rows = torch.tensor([job.condition for job in jobs], device=clap_ND.device)
            return generate_rows(generator, clap_ND[rows], [j.cfg for j in jobs], [j.seed for j in jobs],
                                 knobs, batch_size)
    bar = tqdm(total=len(jobs), desc="generate", unit="clip", disable=not progress)
    for job, wav_1T in zip(jobs, runner(jobs, clap_ND, knobs)):
        write_audio(job.path, wav_1T, generator.sample_rate)
        bar.update(1)
    bar.close()

    loading = protocol.loading
    groups_ref, ref_done, errors = embed_file_groups(ref_files, extractor, cache, progress, "embed reference",
                                                     embedder, loading)
    emb_ref = stack(groups_ref, extractor.dim)
    if emb_ref.shape[0] < 2:
        raise ValueError(f"FAD needs at least 2 reference embeddings; {reference} gave {emb_ref.shape[0]}")
    points = []
    for c in cfgs:
        files = [Path(j.path) for j in jobs if j.cfg == c]
        groups, _, _ = embed_file_groups(files, extractor, cache, progress, f"embed cfg {c:g}", embedder,
                                         loading)
        emb = stack(groups, extractor.dim)
        scores: dict[str, Any] = dict(kl_unavailable="no classifier given",
                                      isc_unavailable="no classifier given")
        if classifier is not None:
            outputs = classify_files(files, classifier, progress, f"classify cfg {c:g}",
                                     protocol.classifier_loading)
            scores.update(isc_scores(outputs.softmax, protocol))
            if condition_audio is None:
                scores["kl_unavailable"] = "the conditions do not come from audio clips (use --clap-from)"
            else:
                sources = [condition_audio[j.condition] for j in jobs if j.cfg == c]
                kl = paired_kl(sources, files, classifier, progress=progress, protocol=protocol)
                scores.update(kl=kl.softmax, kl_sigmoid=kl.sigmoid, kl_unavailable=kl.unavailable)
        points.append(GuidancePoint(
            cfg=c, folder=str(Path(output_dir) / cfg_folder(c)), samples=len(files),
            fad=protocol.frechet_distance(groups_ref, groups), fad_warning=fad_warning(emb_ref, emb),
            **{"inception_score": None, "kl": None, **scores},
        ))
    return GenerationReport(
        reference=str(reference), reference_files=len(ref_done), conditions=N, num_samples=num_samples,
        seed=seed, sampling=knobs, extractor=extractor.name,
        classifier=None if classifier is None else classifier.name, points=tuple(points),
        errors=tuple(errors), protocol=protocol.to_dict(), precision=generator.precision,
    )


def isc_scores(softmax_NC: torch.Tensor, protocol: Protocol) -> dict[str, Any]:
    """``inception_score``, ``inception_score_std`` and ``isc_unavailable`` of a set's class distributions."""
    import numpy as np

    from aar import metrics

    N = softmax_NC.shape[0]
    if N < protocol.isc_splits:
        return dict(isc_unavailable=f"ISc with {protocol.isc_splits} splits needs at least "
                                    f"{protocol.isc_splits} clips, got {N}")
    parts = metrics.inception_score_splits(softmax_NC, splits=protocol.isc_splits, seed=protocol.isc_seed)
    return dict(inception_score=float(np.mean(parts)), inception_score_std=float(np.std(parts)),
                isc_unavailable=None)
