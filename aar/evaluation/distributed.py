"""Generation, embedding and reconstruction of evaluation sets across a Ray cluster, with the engine
``aar tokenize --ray`` uses (``ray_session``, ``ActorPoolStrategy``, order preserved).

Generation jobs become a Ray dataset; an actor pool, each actor loading the generator once, draws its
jobs a few at a time with one seed per job (``generate_rows``: each job exactly as alone, which is what
the local run writes too). Embedding ships the extractor (and the cache, whose folder every worker must
be able to reach) to an actor pool that runs the local code on each file. Reconstruction ships the
extractor to an actor pool whose actors load the tokenizer once and run the local code on each file;
per-window scores and embeddings come back as float64 and the driver aggregates them exactly as the
local run does. Results come back in input order, equal to the local run's.

Every actor runs torch with the driver's thread count (``torch.get_num_threads()`` when the runner
runs): float32 sums are split by thread, so another count rounds differently, and a draw on the edge
of two tokens can then go the other way. With the same count the workers compute what the local run
computes.

Legend: N conditions or files, D condition or embedding size, T samples, n frames of a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from aar.data.batch import model_location
from aar.data.ray import actor_pool
from aar.data.runners import FILES_PER_TASK, ray_session
from aar.evaluation.guidance_sweep import DEFAULT_BATCH_SIZE, generate_rows
from aar.evaluation.round_trip import METRICS, FileResult, reconstruct_locally
from aar.evaluation.sets import FileError, embed_locally
from aar.loading.digest import weights_digest
from aar.metrics.protocols import get_protocol


class GeneratorActor:
    """The callable class ``map_batches`` runs: loads the generator once, then draws batches of jobs.

    Args:
        model: What ``AARGenerator.from_pretrained`` accepts, reachable from the worker.
        tokenizer: The paired tokenizer for an official checkpoint, or None.
        knobs: top_k, top_p and temperature.
        device: Where the actor runs the generator (None: the CPU).
        precision: The generator's precision (``AARGenerator.from_pretrained``'s option).
        batch_size: Jobs generated together (``generate_rows``); the audio does not depend on it.
    """

    def __init__(self, model: str, tokenizer: str | None, knobs: dict, threads: int,
                 device: str | None = None, precision: str = "fp32",
                 batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        from aar.generator import AARGenerator

        torch.set_num_threads(threads)  # the driver's: float sums, and so draws, follow thread count
        self.generator = AARGenerator.from_pretrained(model, tokenizer=tokenizer, device=device,
                                                      precision=precision)
        self.knobs = knobs
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        clap_nD = torch.from_numpy(np.stack(batch["clap"]).astype(np.float32))
        audio = generate_rows(self.generator, clap_nD, list(batch["cfg"]), list(batch["seed"]), self.knobs,
                              self.batch_size)
        return {"index": batch["index"], "audio": np.stack([wav_1T[0].float().numpy() for wav_1T in audio])}


def ray_runner(model: str | os.PathLike, tokenizer: str | os.PathLike | None, address: str,
               concurrency: int | tuple[int, int] | None = None, *, device: str | None = None,
               precision: str = "fp32", batch_size: int = DEFAULT_BATCH_SIZE):
    """A ``runner`` for :func:`aar.evaluation.evaluate_generation` that generates on Ray.

    Args:
        model: The generator, as a path every worker can read or a Hub repo id.
        tokenizer: Its paired tokenizer for an official checkpoint, or None.
        address: ``"local"`` starts Ray on this machine; ``"auto"`` or an address joins a cluster; an
            already initialized Ray is used as it is.
        concurrency: Actors (see ``aar.data.ray_tokenize``); None: 1 up to the cluster's CPUs.
        device: Where each actor runs the generator (``--device``; None: the CPU), so a Ray run draws
            what a local run on that device draws.
        precision: The generator's precision (``--precision``).
        batch_size: Jobs each actor generates together (``--batch-size``).

    Returns:
        ``runner(jobs, clap_ND, knobs)``, yielding each job's (1, T) audio in job order.
    """
    location = model_location(model)
    pair = None if tokenizer is None else model_location(tokenizer)

    def runner(jobs, clap_ND: torch.Tensor, knobs: dict):
        rows = clap_ND.detach().to("cpu", torch.float32).numpy()
        with ray_session(address) as data:
            items = [{"index": k, "clap": rows[job.condition], "cfg": job.cfg, "seed": job.seed}
                     for k, job in enumerate(jobs)]
            out = data.from_items(items).map_batches(
                GeneratorActor, fn_constructor_kwargs=dict(model=location, tokenizer=pair, knobs=knobs,
                                                     threads=torch.get_num_threads(),
                                                     device=None if device is None else str(device),
                                                     precision=precision, batch_size=batch_size),
                batch_size=FILES_PER_TASK, batch_format="numpy", compute=actor_pool(concurrency),
            )
            at = 0
            for batch in out.iter_batches(batch_format="numpy", batch_size=None):
                assert list(batch["index"]) == list(range(at, at + len(batch["index"])))
                at += len(batch["index"])
                for wav_T in batch["audio"]:
                    yield torch.from_numpy(np.array(wav_T, dtype=np.float32))[None]

    return runner


class EmbedderActor:
    """The callable class ``map_batches`` runs for embedding: the local code, on a batch of paths.

    Args:
        extractor: The embedding model (pickled to each actor once).
        cache: An ``aar.metrics.EmbeddingCache`` on a folder every worker can reach, or None.
        loading: How files are prepared for the extractor (the protocol's).
    """

    def __init__(self, extractor, cache, loading, threads: int) -> None:
        torch.set_num_threads(threads)
        self.extractor = extractor
        self.cache = cache
        self.loading = loading

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows, errors = [], []
        for result in embed_locally(list(batch["path"]), self.extractor, self.cache, self.loading):
            failed = isinstance(result, FileError)
            rows.append([] if failed else result.reshape(-1).tolist())
            errors.append(result.error if failed else "")  # never null: an all-null column reads as NaN
        return {"index": batch["index"], "embedding": rows, "error": errors}


def ray_embedder(address: str, concurrency: int | tuple[int, int] | None = None):
    """An ``embedder`` for ``compare_sets`` and ``evaluate_generation`` that embeds on Ray.

    Args:
        address: ``"local"``, ``"auto"`` or a cluster address; an initialized Ray is used as it is.
        concurrency: Actors (see ``aar.data.ray_tokenize``); None: 1 up to the cluster's CPUs.

    Returns:
        ``embedder(paths, extractor, cache, loading)``, yielding each file's (n, D) float64 embeddings
        or its ``FileError``, in input order.
    """

    def embedder(paths, extractor, cache, loading):
        paths = list(paths)
        items = [{"index": k, "path": str(Path(p).resolve())} for k, p in enumerate(paths)]
        with ray_session(address) as data:
            out = data.from_items(items).map_batches(
                EmbedderActor, fn_constructor_kwargs=dict(extractor=extractor, cache=cache, loading=loading,
                                                           threads=torch.get_num_threads()),
                batch_size=FILES_PER_TASK, batch_format="numpy", compute=actor_pool(concurrency),
            )
            at = 0
            for batch in out.iter_batches(batch_format="numpy", batch_size=None):
                assert list(batch["index"]) == list(range(at, at + len(batch["index"])))
                for k, row, error in zip(batch["index"], batch["embedding"], batch["error"]):
                    if error:
                        yield FileError(str(paths[k]), str(error))
                    else:
                        yield torch.from_numpy(np.array(row, dtype=np.float64)).reshape(-1, extractor.dim)
                at += len(batch["index"])

    return embedder


class ReconstructorActor:
    """The callable class ``map_batches`` runs for reconstruction: loads the tokenizer once, then runs
    the local code on batches of paths.

    Args:
        model: What ``SATTokenizer.from_pretrained`` accepts, reachable from the worker.
        extractor: The embedding model for FAD (pickled to each actor once), or None.
        min_tail: Shortest final partial window scored, in samples.
        batch_size: Windows per forward pass.
        protocol: The evaluation protocol (``aar.metrics.protocols.Protocol``).
    """

    def __init__(self, model: str, extractor, min_tail: int, batch_size: int | None, protocol,
                 threads: int) -> None:
        torch.set_num_threads(threads)
        from aar.tokenizer import SATTokenizer

        self.tokenizer = SATTokenizer.from_pretrained(model)
        self.digest = weights_digest(self.tokenizer, self.tokenizer.config.to_dict())
        self.extractor, self.min_tail, self.batch_size = extractor, min_tail, batch_size
        self.protocol = protocol

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows = []
        for result in reconstruct_locally(list(batch["path"]), self.tokenizer, self.extractor,
                                          self.min_tail, self.batch_size, self.protocol):
            if isinstance(result, FileError):
                rows.append({"error": result.error})
                continue
            row = {"samples": result.samples, "unscored": result.unscored_samples,
                   "scores": {m: result.scores[m].tolist() for m in METRICS}}
            if result.emb_ref is not None:
                row["emb_ref"], row["emb_est"] = result.emb_ref.tolist(), result.emb_est.tolist()
            rows.append(row)
        # one JSON string per file: float64 survives (repr round-trips) and no column is ragged or null
        return {"index": batch["index"], "digest": [self.digest] * len(rows),
                "result": [json.dumps(r) for r in rows]}


def _file_result(path: str, resolved: str, row: dict) -> FileResult | FileError:
    """A worker's JSON row for ``resolved`` as the local run reports it, under the path as given."""
    if "error" in row:
        return FileError(path, row["error"].replace(resolved, path))

    def matrix(key):
        return torch.tensor(row[key], dtype=torch.float64) if key in row else None

    return FileResult(path, row["samples"], row["unscored"],
                      {m: torch.tensor(row["scores"][m], dtype=torch.float64) for m in METRICS},
                      matrix("emb_ref"), matrix("emb_est"))


def ray_reconstructor(model: str | os.PathLike, address: str,
                      concurrency: int | tuple[int, int] | None = None):
    """A ``runner`` for :func:`aar.evaluation.evaluate_reconstruction` that reconstructs on Ray.

    Each actor loads the tokenizer from ``model`` once, on its CPU. The runner compares the weights
    every actor loaded with those of the tokenizer given to ``evaluate_reconstruction`` and refuses to
    report scores of a different model; the scores equal those of a local run on the CPU.

    Args:
        model: The tokenizer, as a path every worker can read or a Hub repo id.
        address: ``"local"``, ``"auto"`` or a cluster address; an initialized Ray is used as it is.
        concurrency: Actors (see ``aar.data.ray_tokenize``); None: 1 up to the cluster's CPUs.

    Returns:
        ``runner(paths, tokenizer, extractor, min_tail, batch_size, protocol)``, yielding each file's
        ``FileResult`` or ``FileError`` in input order.

    Raises:
        ValueError: (when the runner runs) an actor loaded weights, dtype or config that differ from
            the tokenizer's.
    """
    location = model_location(model)

    def runner(paths, tokenizer, extractor, min_tail, batch_size, protocol=None):
        paths = [str(p) for p in paths]
        items = [{"index": k, "path": str(Path(p).resolve())} for k, p in enumerate(paths)]
        expected = weights_digest(tokenizer, tokenizer.config.to_dict())
        with ray_session(address) as data:
            out = data.from_items(items).map_batches(
                ReconstructorActor, fn_constructor_kwargs=dict(
                    model=location, extractor=extractor, min_tail=min_tail, batch_size=batch_size,
                    protocol=get_protocol(protocol), threads=torch.get_num_threads()),
                batch_size=FILES_PER_TASK, batch_format="numpy", compute=actor_pool(concurrency),
            )
            at = 0
            for batch in out.iter_batches(batch_format="numpy", batch_size=None):
                assert list(batch["index"]) == list(range(at, at + len(batch["index"])))
                at += len(batch["index"])
                for k, digest, row in zip(batch["index"], batch["digest"], batch["result"]):
                    if str(digest) != expected:
                        raise ValueError(
                            f"the Ray workers loaded {location!r} with weights {digest}, not the "
                            f"tokenizer given ({expected}): pass the same checkpoint, in float32 on "
                            "the CPU, to both")
                    yield _file_result(paths[k], items[k]["path"], json.loads(str(row)))

    return runner
