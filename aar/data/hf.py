"""``tokenize_dataset``: add SAT token columns to a Hugging Face ``datasets.Dataset``.

Legend: W one-second windows of an item, s_i tokens of scale i in one window.
"""

from __future__ import annotations

import hashlib
import os

import torch

from aar.data.batch import (
    FORMAT_VERSION,
    check_errors_mode,
    check_tokenizer,
    encode_table,
    token_schema,
    worker_threads,
)
from aar.errors import check_positive_int, require_extra
from aar.loading.digest import weights_digest
from aar.tokenizer import SATTokenizer
from aar.version import __version__


class _BatchEncoder:
    """The function ``Dataset.map`` runs: Arrow batch in, Arrow batch with token columns out.

    It pickles with its tokenizer (for ``num_proc > 1``). In a worker process it first limits torch to
    its share of the cores, so N workers do not each start one thread per core.
    """

    def __init__(self, tokenizer, audio_column, sample_rate_column, errors, workers):
        self.tokenizer = tokenizer
        self.audio_column = audio_column
        self.sample_rate_column = sample_rate_column
        self.errors = errors
        self.workers = workers
        self.parent = os.getpid()
        self.configured = False

    def __call__(self, table):
        if not self.configured and os.getpid() != self.parent:
            torch.set_num_threads(worker_threads(self.workers))
            self.configured = True
        return encode_table(
            table, self.tokenizer, self.audio_column,
            sample_rate_column=self.sample_rate_column, errors=self.errors,
        )


def cache_fingerprint(
    dataset_fingerprint: str, tokenizer: SATTokenizer, audio_column: str,
    sample_rate_column: str | None, errors: str,
) -> str:
    """The ``datasets`` fingerprint of the tokenized dataset: same inputs, same cache file."""
    weights = weights_digest(tokenizer, tokenizer.config.to_dict())  # config and every weight
    parts = [dataset_fingerprint, weights, audio_column, str(sample_rate_column), errors,
             str(FORMAT_VERSION), __version__]
    return "aar-" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def tokenize_dataset(
    ds,
    tokenizer: SATTokenizer | str | os.PathLike,
    audio_column: str = "audio",
    batch_size: int = 16,
    num_proc: int | None = None,
    *,
    sample_rate_column: str | None = None,
    errors: str = "raise",
    load_from_cache_file: bool = True,
    desc: str = "Tokenizing",
):
    """Add SAT token columns to a Hugging Face dataset.

    Each item is encoded on its own with ``tokenizer.encode``, so its codes are exactly those of
    ``tok.encode(array, sampling_rate)``. Order and values do not depend on ``batch_size`` or
    ``num_proc``.

    The audio column may hold:

    * the ``datasets.Audio`` feature: its stored file bytes (or path) are decoded with soundfile at the
      file's own rate, so the feature's ``sampling_rate`` and ``num_channels`` casts are not applied
      (the tokenizer mixes to mono and resamples to 24 kHz itself) and ``torchcodec`` is not needed;
    * decoded audio as a struct ``{"array": samples, "sampling_rate": Hz}``, samples (T,) or (C, T);
    * a file path (string) or a file's bytes;
    * raw sample arrays, with their rates in ``sample_rate_column``.

    Resuming: for a dataset backed by cache files (``load_dataset``, ``load_from_disk``), the result is
    cached under a fingerprint made of the dataset's fingerprint, a hash of every tokenizer weight and
    the arguments that change the output (not ``batch_size`` or ``num_proc``). Running the same call
    again loads the cache; after an interruption with ``num_proc=N``, the shards that finished are
    loaded and only the others are recomputed. In-memory datasets (``Dataset.from_dict``) have no
    cache.

    Args:
        ds: A ``datasets.Dataset``, or a ``DatasetDict`` (every split is tokenized).
        tokenizer: An ``SATTokenizer``, or anything ``SATTokenizer.from_pretrained`` accepts. With
            ``num_proc > 1`` the tokenizer object is pickled to each worker, so it must live on the
            CPU; each worker uses ``cpu_count // num_proc`` torch threads.
        audio_column: Name of the audio column.
        batch_size: Items per ``map`` batch (items per cache write; each item is encoded alone).
        num_proc: Worker processes for ``Dataset.map``; None or 1 runs in this process.
        sample_rate_column: Column holding the rate of raw sample arrays.
        errors: ``"raise"`` stops at the first unreadable item; ``"record"`` keeps going, leaving its
            token columns null and its reason in an ``error`` column.
        load_from_cache_file: Reuse a cached result when there is one.
        desc: Label of the progress bar ``datasets`` shows.

    Returns:
        The dataset, same rows and format, plus ``codes_0`` ... ``codes_15`` (int16 lists shaped
        (W, s_i)), ``length`` (samples at 24 kHz) and ``sample_rate`` (the audio's own rate).

    Raises:
        MissingExtraError: ``datasets`` is not installed (``pip install "aar-audio[data]"``).
        TypeError: ``ds`` is not a ``Dataset``/``DatasetDict``, or ``tokenizer`` is not a tokenizer.
        ValueError: a bad argument, or (with ``errors="raise"``) an item that cannot be tokenized.

    Example:
        >>> from datasets import Dataset
        >>> import numpy as np
        >>> from aar import SATConfig, SATTokenizer
        >>> from aar.data import tokenize_dataset
        >>> tok = SATTokenizer(SATConfig(n_filters=4, dimension=8, latent_dim=8)).eval()
        >>> ds = Dataset.from_dict({"audio": [{"array": np.zeros(30000), "sampling_rate": 16000}]})
        >>> out = tokenize_dataset(ds, tok)
        >>> row = out[0]
        >>> len(row["codes_0"]), len(row["codes_15"][0]), row["length"], row["sample_rate"]
        (2, 75, 45000, 16000)
    """
    datasets = require_extra("datasets", "data", "aar.data")
    if isinstance(ds, datasets.DatasetDict):
        return datasets.DatasetDict({
            split: tokenize_dataset(
                part, tokenizer, audio_column, batch_size, num_proc,
                sample_rate_column=sample_rate_column, errors=errors,
                load_from_cache_file=load_from_cache_file, desc=f"{desc} {split}",
            )
            for split, part in ds.items()
        })
    if not isinstance(ds, datasets.Dataset):
        raise TypeError(f"ds must be a datasets.Dataset or DatasetDict, got {type(ds).__name__}")
    if not isinstance(tokenizer, SATTokenizer):
        tokenizer = SATTokenizer.from_pretrained(tokenizer)
    check_tokenizer(tokenizer)
    check_errors_mode(errors)
    for name, column in (("audio_column", audio_column), ("sample_rate_column", sample_rate_column)):
        if column is not None and column not in ds.column_names:
            raise ValueError(f"{name}={column!r} is not a column; columns are {ds.column_names}")
    check_positive_int("batch_size", batch_size)
    check_positive_int("num_proc", num_proc, optional=True)
    workers = num_proc or 1
    if workers > 1 and tokenizer.device.type != "cpu":
        raise ValueError(
            f"num_proc={num_proc} needs a CPU tokenizer (worker processes cannot share "
            f"{tokenizer.device}); use num_proc=None on an accelerator"
        )

    added = datasets.Features.from_arrow_schema(
        token_schema(tokenizer.config.num_scales, with_error=errors == "record")
    )
    features = datasets.Features({**{k: v for k, v in ds.features.items() if k not in added}, **added})
    encoder = _BatchEncoder(tokenizer, audio_column, sample_rate_column, errors, workers)
    fmt = ds.format
    out = ds.with_format("arrow").map(
        encoder,
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc if workers > 1 else None,
        features=features,
        new_fingerprint=cache_fingerprint(
            ds._fingerprint, tokenizer, audio_column, sample_rate_column, errors
        ),
        load_from_cache_file=load_from_cache_file,
        desc=desc,
    )
    columns = fmt["columns"]
    if columns is not None:  # a format restricted to some columns also shows the added ones
        columns = None if set(columns) >= set(ds.column_names) else columns + [
            c for c in added if c not in columns
        ]
    return out.with_format(
        fmt["type"], columns=columns, output_all_columns=fmt["output_all_columns"], **fmt["format_kwargs"]
    )
