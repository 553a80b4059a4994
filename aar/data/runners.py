"""Where ``tokenize_folder``'s work runs: this process, spawned worker processes, or Ray Data.

Each runner takes lists of files (paths relative to ``root``) and yields ``(files, table)`` in input
order, ``table`` holding one row per file: ``path``, the token columns and ``error``.
"""

from __future__ import annotations

import collections
import contextlib
import os

from aar.data.batch import check_tokenizer, encode_table, worker_threads
from aar.data.ray import ray_tokenize
from aar.errors import require_extra
from aar.tokenizer import SATTokenizer

#: Files per unit of work handed to a worker.
FILES_PER_TASK = 8

_WORKER_TOKENIZER: SATTokenizer | None = None


def _init_worker(model: str, threads: int) -> None:
    import torch

    global _WORKER_TOKENIZER
    torch.set_num_threads(threads)
    _WORKER_TOKENIZER = check_tokenizer(SATTokenizer.from_pretrained(model))


def _encode_files(tokenizer: SATTokenizer, root: str, files: list[str]):
    """Token table of some files: path (relative), codes, length, sample_rate, error."""
    pa = require_extra("pyarrow", "data", "aar.data")
    table = pa.table({"path": [os.path.join(root, f) for f in files]})
    out = encode_table(table, tokenizer, "path", errors="record")
    return out.set_column(0, "path", pa.array(files, pa.string()))


def _worker_encode(root: str, files: list[str]):
    return _encode_files(_WORKER_TOKENIZER, root, files)


def in_process(tokenizer, root, tasks):
    for files in tasks:
        yield files, _encode_files(tokenizer, root, files)


def process_pool(location, num_proc, root, tasks):
    """Tasks through ``num_proc`` spawned workers, each loading the model once; results in order."""
    import concurrent.futures
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # fork is unsafe once torch has started threads
    pool = concurrent.futures.ProcessPoolExecutor(
        num_proc, mp_context=context, initializer=_init_worker,
        initargs=(location, worker_threads(num_proc)),
    )
    try:
        pending: collections.deque = collections.deque()
        for files in tasks:
            pending.append((files, pool.submit(_worker_encode, root, files)))
            if len(pending) >= 4 * num_proc:  # a bounded window keeps memory flat on huge folders
                head, future = pending.popleft()
                yield head, future.result()
        while pending:
            head, future = pending.popleft()
            yield head, future.result()
    finally:  # on an interruption, drop the queued work instead of finishing it
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def ray_session(address: str):
    ray = require_extra("ray", "ray", "aar.data on Ray")
    data = require_extra("ray.data", "ray", "aar.data on Ray")
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=None if address == "local" else address)
        except ConnectionError as err:
            raise ConnectionError(
                f"{err} (ray_address={address!r}; 'local' starts a Ray instance on this machine)"
            ) from None
    context = data.DataContext.get_current()
    saved = context.execution_options.preserve_order, getattr(context, "enable_progress_bars", None)
    context.execution_options.preserve_order = True
    if saved[1] is not None:
        context.enable_progress_bars = False
    try:
        yield data
    finally:
        context.execution_options.preserve_order = saved[0]
        if saved[1] is not None:
            context.enable_progress_bars = saved[1]
        if started:
            ray.shutdown()


def on_ray(data, location, root, files):
    """All pending files as one Ray dataset; batches come back in input order."""
    pa = require_extra("pyarrow", "data", "aar.data")
    ds = data.from_items([{"path": os.path.join(root, f)} for f in files])
    out = ray_tokenize(ds, location, audio_column="path", batch_size=FILES_PER_TASK, errors="record")
    at = 0
    for batch in out.iter_batches(batch_format="pyarrow", batch_size=None):
        names = files[at : at + batch.num_rows]
        assert batch.column("path").to_pylist() == [os.path.join(root, f) for f in names]
        at += batch.num_rows
        yield names, batch.set_column(0, "path", pa.array(names, pa.string()))
