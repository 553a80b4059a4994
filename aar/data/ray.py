"""``ray_tokenize``: add SAT token columns to a Ray Data dataset, one model per actor.

Legend: W one-second windows of an item, s_i tokens of scale i in one window.
"""

from __future__ import annotations

import os

from aar.data.batch import check_errors_mode, check_tokenizer, encode_table, model_location
from aar.errors import check_positive_int, require_extra


class SATEncoderActor:
    """The callable class ``map_batches`` runs: each Ray actor loads the model once, then encodes batches.

    Args:
        model: Anything ``SATTokenizer.from_pretrained`` accepts, reachable from the worker.
        audio_column: Column holding the audio.
        sample_rate_column: Column holding the rate of raw sample arrays, if any.
        errors: ``"raise"`` or ``"record"`` (see :func:`ray_tokenize`).
        device: Where the actor puts the model.
    """

    def __init__(self, model: str, audio_column: str, sample_rate_column: str | None, errors: str,
                 device: str = "cpu") -> None:
        from aar.tokenizer import SATTokenizer

        self.tokenizer = check_tokenizer(SATTokenizer.from_pretrained(model, device=device))
        self.audio_column = audio_column
        self.sample_rate_column = sample_rate_column
        self.errors = errors

    def __call__(self, table):
        return encode_table(
            table, self.tokenizer, self.audio_column,
            sample_rate_column=self.sample_rate_column, errors=self.errors,
        )


def actor_pool(concurrency):
    """An ``ActorPoolStrategy`` from an int (fixed size), a (min, max) pair, or None (1 to all CPUs)."""
    data = require_extra("ray.data", "ray", "aar.data on Ray")
    if concurrency is None:
        return data.ActorPoolStrategy(min_size=1, max_size=None)
    if isinstance(concurrency, int) and not isinstance(concurrency, bool) and concurrency >= 1:
        return data.ActorPoolStrategy(min_size=concurrency, max_size=concurrency)
    if (
        isinstance(concurrency, tuple) and len(concurrency) == 2
        and all(isinstance(c, int) and not isinstance(c, bool) for c in concurrency)
        and 1 <= concurrency[0] <= concurrency[1]
    ):
        return data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    raise ValueError(
        f"concurrency must be None, a positive int, or a (min, max) pair of ints with 1 <= min <= max, "
        f"got {concurrency!r}"
    )


def ray_tokenize(
    ray_dataset,
    model: str | os.PathLike,
    *,
    audio_column: str = "audio",
    batch_size: int = 16,
    concurrency: int | tuple[int, int] | None = None,
    sample_rate_column: str | None = None,
    errors: str = "raise",
    num_cpus: float = 1,
    num_gpus: float = 0,
):
    """Add SAT token columns to a Ray Data dataset with ``map_batches`` and an actor pool.

    Each actor loads ``model`` once and encodes every item alone with ``tok.encode``, so the codes are
    exactly those of the library. The audio column holds the same kinds of values as for
    :func:`aar.data.tokenize_dataset`: file paths (readable from every worker, e.g. a shared
    filesystem), file bytes, ``{"array", "sampling_rate"}`` structs, the ``datasets.Audio`` storage, or
    raw sample arrays with ``sample_rate_column`` (the layout of ``ray.data.read_audio``: ``amp`` and
    ``sample_rate``). The dataset is lazy: nothing runs until it is consumed or written
    (``.write_parquet(...)``). Set ``DataContext.get_current().execution_options.preserve_order`` to
    keep the input order.

    Args:
        ray_dataset: A ``ray.data.Dataset``.
        model: Anything ``SATTokenizer.from_pretrained`` accepts; a local path is made absolute.
        audio_column: Name of the audio column.
        batch_size: Items per ``map_batches`` call.
        concurrency: Actors: an int for a fixed pool, a ``(min, max)`` pair to autoscale, None for 1 up
            to what the cluster's CPUs allow.
        sample_rate_column: Column holding the rate of raw sample arrays.
        errors: ``"raise"`` fails the job at the first unreadable item; ``"record"`` leaves its token
            columns null and puts its reason in an ``error`` column.
        num_cpus: CPUs reserved per actor (torch in an actor uses that many threads).
        num_gpus: GPUs per actor; above 0 the model is loaded on ``cuda``.

    Returns:
        A lazy ``ray.data.Dataset``: the input columns plus ``codes_0`` ... ``codes_15`` (int16 lists
        shaped (W, s_i)), ``length`` (samples at 24 kHz) and ``sample_rate`` (the original rate).

    Raises:
        MissingExtraError: Ray Data is not installed (``pip install "aar-audio[ray]"``).
        TypeError: ``model`` is not a path or repo id.
        ValueError: a bad argument.
    """
    data = require_extra("ray.data", "ray", "aar.data on Ray")
    if not isinstance(ray_dataset, data.Dataset):
        raise TypeError(f"ray_dataset must be a ray.data.Dataset, got {type(ray_dataset).__name__}")
    location = model_location(model)
    check_errors_mode(errors)
    check_positive_int("batch_size", batch_size)
    if not num_cpus > 0 or num_gpus < 0:
        raise ValueError(f"num_cpus must be > 0 and num_gpus >= 0, got {num_cpus!r} and {num_gpus!r}")
    return ray_dataset.map_batches(
        SATEncoderActor,
        fn_constructor_kwargs=dict(
            model=location, audio_column=audio_column, sample_rate_column=sample_rate_column,
            errors=errors, device="cuda" if num_gpus > 0 else "cpu",
        ),
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=actor_pool(concurrency),
        num_cpus=num_cpus,
        num_gpus=num_gpus,
    )
