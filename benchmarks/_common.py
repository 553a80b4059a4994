"""Helpers shared by the benchmarks: model sizes, timing, the machine, the table and the JSON line."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from aar import AARConfig, AARGenerator, SATConfig, SATTokenizer
from aar.precision.cpu import cpu_features

# The writer of the official checkpoint layout lives with the tests that prove it inverts
# aar.loading.official; benchmarks run from a source checkout and use that one copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

TINY_SAT = SATConfig(n_filters=4, dimension=8, latent_dim=8, codebook_size=64)
TINY_AAR = AARConfig(depth=1, embed_dim=64, num_heads=1, latent_dim=8, codebook_size=64)
RELEASED = "SATConfig() + AARConfig() (SAT_d128_lat128 + AAR_d16_bs2048 sizes, random weights)"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
#: /proc/cpuinfo flags that decide the fast paths, reported with the machine.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512_fp16",
             "amx_tile", "amx_bf16", "amx_int8")


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser with the flags every benchmark takes."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats and sizes (released sizes)")
    p.add_argument("--tiny", action="store_true", help="tiny models, seconds of work (for tests)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    return p


def setup(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.tiny:  # tiny models gain nothing from threads and lose much on a busy machine
        torch.set_num_threads(1)


def sizes(tiny: bool) -> tuple[SATConfig, AARConfig]:
    return (TINY_SAT, TINY_AAR) if tiny else (SATConfig(), AARConfig())


def build_generator(tiny: bool, seed: int = 0) -> AARGenerator:
    """A generator with random weights (speed does not depend on the values)."""
    sat, aar = sizes(tiny)
    torch.manual_seed(seed)
    return AARGenerator(aar, SATTokenizer(sat).eval()).eval()


def clap_vectors(batch: int, seed: int = 0) -> torch.Tensor:
    """Unit-norm stand-ins for CLAP embeddings, (batch, 512)."""
    v = torch.randn(batch, 512, generator=torch.Generator().manual_seed(seed))
    return v / v.norm(dim=1, keepdim=True)


def tone_audio(seconds: float, rate: int, seed: int = 0) -> torch.Tensor:
    """Deterministic test audio (1, 1, T) at ``rate``: three decaying tones over low noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * rate)) / rate
    wav = 0.02 * torch.randn(t.shape, generator=g)
    for f in (110.0, 440.0, 1800.0):
        wav += 0.2 * torch.sin(2 * math.pi * f * t) * torch.exp(-(t % 2.0))
    return wav.view(1, 1, -1)


def timed(fn: Callable[[], object], runs: int) -> float:
    """The best wall time of ``runs`` calls of ``fn``, in seconds."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def best_of(fn: Callable[[], object], repeats: int, warmup: int = 1) -> dict:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times: min and median wall seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"min_s": round(min(times), 4), "median_s": round(statistics.median(times), 4),
            "runs": repeats}


def gemm_rates(n: int = 1024, k: int = 4096, repeats: int = 5) -> dict:
    """GFLOP/s of an (n, k) x (k, n) product in float32 and bfloat16 now (best of ``repeats``).

    A yardstick printed beside the timings: on a machine shared with other jobs it says how much of
    the CPU the run had, and it shows what bfloat16 buys on this processor.
    """
    rates = {}
    for name, dtype in DTYPES.items():
        a, b = torch.randn(n, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        a @ b
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        rates[name] = round(2 * n * n * k / best / 1e9, 1)
    return rates


def machine(tiny: bool = False) -> dict:
    """CPU model and flags, cores, memory and versions, as the JSON reports them (and GEMM rates
    unless tiny)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:
        pass
    mem = None
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        mem = round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return {
        "cpu": model, "cpu_flags": sorted(set(CPU_FLAGS) & cpu_features().flags),
        "cpu_count": os.cpu_count(), "memory_gib": mem,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "amx_bf16": bool(amx), "load_average_1min": round(os.getloadavg()[0], 2),
        "gemm_gflops": gemm_rates(256, 512, 2) if tiny else gemm_rates(),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print an aligned text table."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def emit(report: dict) -> dict:
    """Print ``report`` as the last line of output: one JSON object."""
    report["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report))
    sys.stdout.flush()
    return report
