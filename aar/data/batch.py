"""Tokenize one Arrow batch: the shared core of the datasets, Ray and folder paths.

Every path hands a ``pyarrow.Table`` to :func:`encode_table`, which decodes each row's audio, calls
``SATTokenizer.encode`` on that row alone (so the codes are exactly what ``tok.encode`` gives for the
item) and appends the token columns.

Legend: N rows in a batch, W one-second windows of a row, s_i tokens of scale i in one window.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from aar.audio import load_audio
from aar.errors import require_extra
from aar.tokenizer import SATTokenizer

#: Bumped whenever the columns or how they are computed change: it invalidates datasets caches.
FORMAT_VERSION = 1
#: Error handling modes: stop at the first bad row, or record its reason in an ``error`` column.
ERROR_MODES = ("raise", "record")
LENGTH_COLUMN = "length"
RATE_COLUMN = "sample_rate"
ERROR_COLUMN = "error"


def codes_column(i: int) -> str:
    """Name of the column holding scale ``i``: ``codes_0`` ... ``codes_{S-1}``."""
    return f"codes_{i}"


def token_schema(num_scales: int, with_error: bool = False):
    """Arrow schema of the added columns: S ``list<list<int16>>`` (W, s_i), length, sample_rate."""
    pa = require_extra("pyarrow", "data", "aar.data")
    fields = [pa.field(codes_column(i), pa.list_(pa.list_(pa.int16()))) for i in range(num_scales)]
    fields += [pa.field(LENGTH_COLUMN, pa.int64()), pa.field(RATE_COLUMN, pa.int64())]
    if with_error:
        fields.append(pa.field(ERROR_COLUMN, pa.string()))
    return pa.schema(fields)


def check_errors_mode(errors: str) -> str:
    if errors not in ERROR_MODES:
        raise ValueError(f"errors must be one of {ERROR_MODES}, got {errors!r}")
    return errors


def check_tokenizer(tokenizer: SATTokenizer) -> SATTokenizer:
    if not isinstance(tokenizer, SATTokenizer):
        raise TypeError(f"tokenizer must be an SATTokenizer, got {type(tokenizer).__name__}")
    if tokenizer.config.codebook_size > 2**15:
        raise ValueError(
            f"codebook_size {tokenizer.config.codebook_size} does not fit the int16 code columns "
            f"(at most {2**15})"
        )
    return tokenizer


def model_location(model) -> str:
    """A model argument that a worker on another process or machine can load again.

    Local paths become absolute; anything else (a Hub repo id) is passed through.
    """
    if isinstance(model, SATTokenizer) or not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            "model must be what SATTokenizer.from_pretrained accepts (a Hub repo id or a local path), "
            f"got {type(model).__name__}; save a tokenizer object with save_pretrained first"
        )
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else str(model)


def _read_bytes(data: bytes) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        wav, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as err:
        raise ValueError(f"cannot decode audio bytes: {err}") from None
    if wav.shape[0] == 0:
        raise ValueError("audio bytes hold no samples")
    return np.ascontiguousarray(wav.T)[None], int(sr)  # (1, C, T): a file may have any channel count


def _read_file(path: str) -> tuple[torch.Tensor, int]:
    wav, sr = load_audio(path)
    return wav[None], sr  # (1, C, T): a file may have any channel count


def _array(value) -> np.ndarray:
    """An Arrow list or tensor scalar as a writable numpy array (torch refuses read-only buffers)."""
    if hasattr(value, "to_numpy"):  # Ray's tensor extension scalars
        array = np.asarray(value.to_numpy())
    elif value.values is None:
        raise ValueError("audio array is null")
    elif hasattr(value.values.type, "value_type"):  # nested list: (C, T)
        array = np.asarray(value.as_py())
    else:
        array = value.values.to_numpy(zero_copy_only=False)
    return array if array.flags.writeable else array.copy()


def decode_audio(value, rate=None) -> tuple[np.ndarray | torch.Tensor, int]:
    """Audio and its rate from one Arrow scalar of an audio column.

    Understood values: a file path (string); a file's bytes (binary); a struct with ``array`` and
    ``sampling_rate`` (decoded audio); a struct with ``bytes`` and/or ``path`` (the storage of the
    ``datasets.Audio`` feature); a list or tensor of samples whose rate ``rate`` comes from another
    column.

    Returns:
        ``(wav, sample_rate)``: wav shaped (T,) or (C, T) for arrays, (1, C, T) for decoded files (any
        channel count), as ``SATTokenizer.encode`` accepts it.
    """
    pa = require_extra("pyarrow", "data", "aar.data")
    if not value.is_valid:
        raise ValueError("audio value is null")
    kind = value.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _read_file(value.as_py())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return _read_bytes(value.as_py())
    if pa.types.is_struct(kind):
        names = {kind.field(j).name for j in range(kind.num_fields)}
        if {"array", "sampling_rate"} <= names and value["array"].is_valid:
            return _array(value["array"]), value["sampling_rate"].as_py()
        if "bytes" in names and value["bytes"].is_valid:
            return _read_bytes(value["bytes"].as_py())
        if "path" in names and value["path"].is_valid:
            return _read_file(value["path"].as_py())
        raise ValueError(
            f"audio struct {sorted(names)} has neither array+sampling_rate nor bytes/path values"
        )
    if rate is None:
        raise ValueError(
            f"audio values of type {kind} are raw samples; pass sample_rate_column to say their rate"
        )
    return _array(value), rate


def _nested_int16(rows: list[np.ndarray | None], s: int):
    """Per-row (W, s) int16 arrays, or None, as one ``list<list<int16>>`` Arrow array."""
    pa = require_extra("pyarrow", "data", "aar.data")
    present = [r for r in rows if r is not None]
    values = np.concatenate([r.reshape(-1) for r in present]) if present else np.zeros(0, np.int16)
    windows = sum(r.shape[0] for r in present)
    inner = pa.ListArray.from_arrays(pa.array(np.arange(windows + 1, dtype=np.int32) * s), pa.array(values))
    counts = [0 if r is None else r.shape[0] for r in rows]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    mask = pa.array([r is None for r in rows]) if len(present) < len(rows) else None
    return pa.ListArray.from_arrays(pa.array(offsets), inner, mask=mask)


def encode_table(
    table,
    tokenizer: SATTokenizer,
    audio_column: str = "audio",
    *,
    sample_rate_column: str | None = None,
    errors: str = "raise",
):
    """Tokenize every row of an Arrow table and return it with the token columns added.

    Args:
        table: A ``pyarrow.Table`` with N rows.
        tokenizer: The model; each row is encoded alone with ``tokenizer.encode``.
        audio_column: The column holding the audio (see :func:`decode_audio`).
        sample_rate_column: Column with the rate of raw sample arrays, if ``audio_column`` holds them.
        errors: ``"raise"`` stops at the first row that cannot be read or encoded; ``"record"`` gives
            that row null tokens and its reason in an ``error`` column (null for good rows).

    Returns:
        The table plus ``codes_0`` ... ``codes_{S-1}`` (int16 lists shaped (W, s_i)), ``length``
        (samples at 24 kHz) and ``sample_rate`` (the audio's own rate), replacing same-named columns.
    """
    if audio_column not in table.column_names:
        raise ValueError(f"no audio column {audio_column!r}; columns are {table.column_names}")
    audio = table.column(audio_column)
    rates = table.column(sample_rate_column).to_pylist() if sample_rate_column else [None] * len(audio)
    scales = tokenizer.config.scales
    per_scale: list[list[np.ndarray | None]] = [[] for _ in scales]
    lengths, orig_rates, reasons = [], [], []
    for i in range(table.num_rows):
        try:
            wav, sr = decode_audio(audio[i], rates[i])
            codes = tokenizer.encode(wav, sr)
        except Exception as err:
            if errors == "raise":
                raise
            reason = f"{type(err).__name__}: {err}"
            for column in per_scale:
                column.append(None)
            lengths.append(None)
            orig_rates.append(None)
            reasons.append(reason)
            continue
        for column, c in zip(per_scale, codes):
            column.append(c[0].to("cpu", torch.int16).numpy())  # (W, s_i)
        lengths.append(codes.length)
        orig_rates.append(codes.sample_rate)
        reasons.append(None)
    schema = token_schema(len(scales), with_error=errors == "record")
    pa = require_extra("pyarrow", "data", "aar.data")
    arrays = [_nested_int16(rows, s) for rows, s in zip(per_scale, scales)]
    arrays += [pa.array(lengths, pa.int64()), pa.array(orig_rates, pa.int64())]
    if errors == "record":
        arrays.append(pa.array(reasons, pa.string()))
    for field, array in zip(schema, arrays):
        if field.name in table.column_names:
            table = table.set_column(table.column_names.index(field.name), field, array)
        else:
            table = table.append_column(field, array)
    return table


def worker_threads(workers: int) -> int:
    """Torch threads per worker when ``workers`` processes share this machine's cores."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))
