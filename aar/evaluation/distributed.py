"""Generation of an evaluation set across a Ray cluster, with the engine ``aar tokenize --ray`` uses.

Jobs become a Ray dataset; an actor pool, each actor loading the generator once, draws every job
alone with its own seed (exactly what the local run does), and the results come back in job order.

Legend: N conditions, D condition size, T samples.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..data._batch import model_location
from ..data._runners import FILES_PER_TASK, ray_session
from ..data.ray import actor_pool


class GeneratorActor:
    """The callable class ``map_batches`` runs: loads the generator once, then draws batches of jobs.

    Args:
        model: What ``AARGenerator.from_pretrained`` accepts, reachable from the worker.
        tokenizer: The paired tokenizer for an official checkpoint, or None.
        knobs: top_k, top_p and temperature.
    """

    def __init__(self, model: str, tokenizer: str | None, knobs: dict) -> None:
        from ..generator import AARGenerator

        self.generator = AARGenerator.from_pretrained(model, tokenizer=tokenizer)
        self.knobs = knobs

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        audio = [
            self.generator.generate(torch.from_numpy(np.asarray(clap, dtype=np.float32))[None],
                                    cfg=float(cfg), seed=int(seed), **self.knobs)[0, 0].numpy()
            for clap, cfg, seed in zip(batch["clap"], batch["cfg"], batch["seed"])
        ]
        return {"index": batch["index"], "audio": np.stack(audio)}


def ray_runner(model: str | os.PathLike, tokenizer: str | os.PathLike | None, address: str,
               concurrency: int | tuple[int, int] | None = None):
    """A ``runner`` for :func:`aar.evaluation.evaluate_generation` that generates on Ray.

    Args:
        model: The generator, as a path every worker can read or a Hub repo id.
        tokenizer: Its paired tokenizer for an official checkpoint, or None.
        address: ``"local"`` starts Ray on this machine; ``"auto"`` or an address joins a cluster; an
            already initialized Ray is used as it is.
        concurrency: Actors (see ``aar.data.ray_tokenize``); None: 1 up to the cluster's CPUs.

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
                GeneratorActor, fn_constructor_kwargs=dict(model=location, tokenizer=pair, knobs=knobs),
                batch_size=FILES_PER_TASK, batch_format="numpy", compute=actor_pool(concurrency),
            )
            at = 0
            for batch in out.iter_batches(batch_format="numpy", batch_size=None):
                assert list(batch["index"]) == list(range(at, at + len(batch["index"])))
                at += len(batch["index"])
                for wav_T in batch["audio"]:
                    yield torch.from_numpy(np.array(wav_T, dtype=np.float32))[None]

    return runner
