"""``tokenize_folder``: a folder of audio files -> Parquet shards of SAT tokens, resumable.

Layout of the output folder::

    shard-00000.parquet ...   columns path, sample_rate, length, codes_0 ... codes_{S-1}
    errors.jsonl              one {"path", "error"} object per file that could not be tokenized
    manifest.json             model fingerprint, scales, counts and shard list (written last)

Files are listed recursively and sorted; shard k holds files ``[k * shard_size, (k + 1) * shard_size)``
of that list, so the same folder always gives the same shards. Each shard is written atomically and
carries, in its Parquet metadata, the model fingerprint, a hash of its file list and its errors: a
re-run skips every shard that is already complete, so an interrupted run resumed gives exactly one row
per readable file.

Legend: W one-second windows of a file, s_i tokens of scale i in one window.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from aar.audio import AUDIO_EXTENSIONS, is_audio_file
from aar.data.batch import (
    ERROR_COLUMN,
    LENGTH_COLUMN,
    RATE_COLUMN,
    check_tokenizer,
    codes_column,
    model_location,
)
from aar.data.runners import FILES_PER_TASK, in_process, on_ray, process_pool, ray_session
from aar.errors import check_positive_int, require_extra
from aar.loading.files import atomic_path
from aar.tokenizer import SATTokenizer
from aar.version import __version__

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
ERRORS_NAME = "errors.jsonl"
#: Files per shard unless told otherwise: about 9 MB of tokens for 10-second clips.
DEFAULT_SHARD_SIZE = 1000
_META_KEY = b"aar.shard"


@dataclass(frozen=True)
class TokenizeSummary:
    """What a :func:`tokenize_folder` run produced.

    Attributes:
        output_dir: The output folder.
        manifest: Path of ``manifest.json``.
        files: Audio files found.
        rows: Rows in all shards (files tokenized, this run or before).
        errors: Files recorded in ``errors.jsonl``.
        shards: Shards in the output.
        skipped_shards: Shards already complete from an earlier run, not recomputed.
        processed_files: Files tokenized (or failed) by this run.
        seconds: Wall time of this run.
    """

    output_dir: Path
    manifest: Path
    files: int
    rows: int
    errors: int
    shards: int
    skipped_shards: int
    processed_files: int
    seconds: float

    @property
    def files_per_second(self) -> float:
        """Throughput of this run (0 when nothing was left to do)."""
        return self.processed_files / self.seconds if self.processed_files and self.seconds > 0 else 0.0


def list_audio_files(input_dir: str | os.PathLike) -> list[str]:
    """Audio files under ``input_dir``, recursively, as sorted POSIX paths relative to it."""
    root = Path(input_dir)
    found = [
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if is_audio_file(p)
    ]
    return sorted(found)


def shard_name(index: int, count: int) -> str:
    return f"shard-{index:0{max(5, len(str(count - 1)))}d}.parquet"


def _files_hash(files: list[str]) -> str:
    return hashlib.sha256("\n".join(files).encode()).hexdigest()


def _read_shard_meta(path: Path) -> dict | None:
    """The aar metadata of a finished shard, or None when it is missing or unreadable."""
    pq = require_extra("pyarrow.parquet", "data", "aar.data")
    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[_META_KEY])
    except Exception:
        return None


def _write_shard(path: Path, table, meta: dict) -> None:
    pq = require_extra("pyarrow.parquet", "data", "aar.data")
    table = table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


# ---------------------------------------------------------------------- the run
def _check_args(input_dir, num_proc, ray_address, shard_size) -> Path:
    root = Path(input_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"input folder not found: {root}")
    for name, value in (("num_proc", num_proc), ("shard_size", shard_size)):
        check_positive_int(name, value)
    if ray_address is not None and (not isinstance(ray_address, str) or not ray_address):
        raise ValueError(f"ray_address must be None, 'local', 'auto' or a Ray address, got {ray_address!r}")
    if ray_address is not None and num_proc != 1:
        raise ValueError("num_proc and ray_address exclude each other: Ray decides its own workers")
    return root


def tokenize_folder(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    model: str | os.PathLike,
    *,
    num_proc: int = 1,
    ray_address: str | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: bool = True,
) -> TokenizeSummary:
    """Tokenize every audio file under a folder into Parquet shards; safe to interrupt and re-run.

    Files with one of ``aar.audio.AUDIO_EXTENSIONS`` (wav, flac, ogg, opus, mp3, aiff, ...;
    recursively) are read with ``aar.load_audio`` at their own rate and encoded one by one with
    ``tok.encode``, so each row equals the library's codes for that file. A file that cannot be read
    or encoded (corrupt, empty, unsupported) is recorded in ``errors.jsonl`` with its reason and the
    run goes on.

    Args:
        input_dir: Folder of audio files.
        output_dir: Folder for the shards, ``errors.jsonl`` and ``manifest.json``; created if needed.
        model: Anything ``SATTokenizer.from_pretrained`` accepts; each worker loads it once.
        num_proc: Worker processes on this machine (1: in this process).
        ray_address: None to stay on this machine without Ray; ``"local"`` to start a local Ray
            instance; ``"auto"`` or an address (``"ray://head:10001"``) to join a cluster. An already
            initialized Ray (e.g. under ``ray job submit``) is used as it is. Workers must be able to
            read ``input_dir`` (a shared filesystem on a cluster).
        shard_size: Files per shard. Changing it for an existing output recomputes every shard.
        progress: Show a progress bar (files per second).

    Returns:
        A :class:`TokenizeSummary`.

    Raises:
        FileNotFoundError: ``input_dir`` is not a folder.
        ValueError: bad arguments; no audio files; or ``output_dir`` holds shards of another model.
        MissingExtraError: pyarrow (or Ray, when asked for) is not installed (an ``ImportError``).
    """
    start = time.perf_counter()
    root = _check_args(input_dir, num_proc, ray_address, shard_size)
    require_extra("pyarrow", "data", "tokenizing a folder", load=False)  # before the model loads
    if ray_address is not None:
        require_extra("ray.data", "ray", "tokenizing a folder on Ray", load=False)
    out_dir = Path(output_dir)
    location = model_location(model)
    tokenizer = check_tokenizer(SATTokenizer.from_pretrained(location))
    fingerprint = tokenizer.fingerprint()
    files = list_audio_files(root)
    if not files:
        raise ValueError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {root}")
    plan = [files[i : i + shard_size] for i in range(0, len(files), shard_size)]
    names = [shard_name(k, len(plan)) for k in range(len(plan))]
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out_dir, set(names))

    done: dict[int, dict] = {}
    for k, (name, shard_files) in enumerate(zip(names, plan)):
        meta = _read_shard_meta(out_dir / name)
        if meta is None:
            continue
        if meta.get("fingerprint") != fingerprint:
            raise ValueError(
                f"{out_dir / name} was written with model fingerprint {meta.get('fingerprint')}, "
                f"this model's is {fingerprint}; use another output folder"
            )
        if meta.get("files_sha256") == _files_hash(shard_files):
            done[k] = meta
        else:
            logger.warning("%s no longer matches the input folder; recomputing it", name)
    todo = [k for k in range(len(plan)) if k not in done]
    pending_files = [f for k in todo for f in plan[k]]
    tasks = [plan[k][i : i + FILES_PER_TASK] for k in todo for i in range(0, len(plan[k]), FILES_PER_TASK)]

    from tqdm.auto import tqdm

    bar = tqdm(total=len(files), initial=len(files) - len(pending_files), unit="file",
               desc="tokenize", disable=not progress)
    with contextlib.ExitStack() as stack:
        stack.callback(bar.close)
        if not todo:
            results = iter(())
        elif ray_address is not None:
            data = stack.enter_context(ray_session(ray_address))
            results = on_ray(data, location, str(root), pending_files)
        elif num_proc > 1:
            results = process_pool(location, num_proc, str(root), tasks)
        else:
            results = in_process(tokenizer, str(root), tasks)
        pa = require_extra("pyarrow", "data", "aar.data")
        queue = collections.deque(todo)
        pieces, count = [], 0
        for batch_files, table in results:
            pieces.append(table)
            count += len(batch_files)
            bar.update(len(batch_files))
            while queue and count >= len(plan[queue[0]]):
                k = queue.popleft()
                whole = pa.concat_tables(pieces)
                shard, rest = whole.slice(0, len(plan[k])), whole.slice(len(plan[k]))
                assert shard.column("path").to_pylist() == plan[k]
                done[k] = _finish_shard(out_dir / names[k], shard, plan[k], fingerprint, tokenizer)
                pieces, count = [rest], rest.num_rows
                _write_errors(out_dir, done)
    return _write_manifest(out_dir, names, done, tokenizer, location, root, len(files), shard_size,
                           skipped=len(plan) - len(todo), processed=len(pending_files),
                           seconds=time.perf_counter() - start)


def _finish_shard(path: Path, table, files: list[str], fingerprint: str, tokenizer) -> dict:
    """Split good rows from failed ones, write the shard atomically, return its metadata."""
    pc = require_extra("pyarrow.compute", "data", "aar.data")
    failed = pc.is_valid(table.column(ERROR_COLUMN))
    bad = table.filter(failed)
    errors = [{"path": p, "error": e} for p, e in zip(bad.column("path").to_pylist(),
                                                      bad.column(ERROR_COLUMN).to_pylist())]
    columns = ["path", RATE_COLUMN, LENGTH_COLUMN] + [
        codes_column(i) for i in range(tokenizer.config.num_scales)
    ]
    rows = table.filter(pc.invert(failed)).select(columns)
    meta = {"fingerprint": fingerprint, "files_sha256": _files_hash(files), "files": len(files),
            "rows": rows.num_rows, "errors": errors}
    _write_shard(path, rows, meta)
    return meta


def _write_errors(out_dir: Path, done: dict[int, dict]) -> int:
    lines = [json.dumps(e) for k in sorted(done) for e in done[k]["errors"]]
    with atomic_path(out_dir / ERRORS_NAME) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines))
    return len(lines)


def _remove_leftovers(out_dir: Path, keep: set[str]) -> None:
    """Delete shards this plan does not have (the folder shrank) and temporaries of killed runs."""
    for path in out_dir.glob("shard-*.parquet"):
        if path.name not in keep:
            logger.warning("removing %s: not part of the current input folder's shards", path)
            path.unlink()
    for path in out_dir.glob(".shard-*.part.parquet"):
        path.unlink()


def _write_manifest(out_dir, names, done, tokenizer, location, root, files, shard_size, *,
                    skipped, processed, seconds) -> TokenizeSummary:
    errors = _write_errors(out_dir, done)
    config = tokenizer.config
    manifest = {
        "format": "aar-tokens",
        "format_version": 1,
        "aar_version": __version__,
        "model": location,
        "fingerprint": tokenizer.fingerprint(),
        "sample_rate": config.sample_rate,
        "window": config.window,
        "scales": list(config.scales),
        "codebook_size": config.codebook_size,
        "columns": ["path", RATE_COLUMN, LENGTH_COLUMN] + [codes_column(i) for i in range(config.num_scales)],
        "input_dir": str(root.resolve()),
        "shard_size": shard_size,
        "files": files,
        "count": sum(done[k]["rows"] for k in done),
        "errors": errors,
        "shards": [{"file": names[k], "rows": done[k]["rows"], "errors": len(done[k]["errors"])}
                   for k in sorted(done)],
    }
    path = out_dir / MANIFEST_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    return TokenizeSummary(out_dir, path, files, manifest["count"], errors, len(names), skipped,
                           processed, seconds)
