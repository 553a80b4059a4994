"""Two measurements of ``benchmarks/generate.py`` for a shared machine: the spread, and the operators.

``spread`` lets one precision and the official-kind loop take turns for a while, so a report shows
how far a shared machine's load moves both (best, median and worst, and their ratio turn by turn)
instead of one best-of figure. ``operator_profile`` says where one generation's time goes, by
PyTorch operator.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def spread(runners: dict[str, Callable[[], object]], seconds: float) -> dict:
    """Run the two ``runners`` in turns, one call each per turn, until ``seconds`` have passed.

    Args:
        runners: Exactly two named calls, e.g. ``{"int8": ..., "official": ...}``; the second is
            the reference of the ratio.
        seconds: How long to keep taking turns (at least one turn runs).

    Returns:
        ``{"turns": n, name: {"best", "median", "worst"} for each, "ratio": the same for the
        second's time over the first's, turn by turn}``, seconds rounded to milliseconds.
    """
    if len(runners) != 2:
        raise ValueError(f"spread takes two runners, got {list(runners)}")
    (a, run_a), (b, run_b) = runners.items()
    times: dict[str, list[float]] = {a: [], b: []}
    end = time.monotonic() + seconds
    while not times[a] or time.monotonic() < end:
        for name, run in ((a, run_a), (b, run_b)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    ratios = [tb / ta for ta, tb in zip(times[a], times[b])]
    summary = {name: _summary(values, 3) for name, values in times.items()}
    return {"turns": len(ratios), **summary, "ratio": _summary(ratios, 2)}


def _summary(values: list[float], digits: int) -> dict:
    return {"best": round(min(values), digits), "median": round(statistics.median(values), digits),
            "worst": round(max(values), digits)}


def operator_profile(run: Callable[[], object], top: int = 12) -> list[dict]:
    """The operators that took the most time in one call of ``run`` (``torch.profiler``).

    Returns:
        Up to ``top`` rows ``{"operator", "calls", "ms", "share"}``, by self CPU time; ``share`` is
        of all operators' self time.
    """
    from torch.profiler import ProfilerActivity, profile

    run()  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return [{"operator": e.key, "calls": e.count, "ms": round(e.self_cpu_time_total / 1e3, 1),
             "share": round(e.self_cpu_time_total / total, 3)} for e in rows]

