"""Long generation speed: seconds of compute per generated second, for 10 s at overlaps 0.25 and 0.5.

    python benchmarks/long_generation.py            # released sizes, 10 s, 2 runs per overlap
    python benchmarks/long_generation.py --quick    # released sizes, 10 s, 1 run per overlap
    python benchmarks/long_generation.py --tiny     # a tiny model and 3 s (for tests)

The models have random weights of the released sizes (``SATConfig()`` = SAT_d128_lat128,
``AARConfig()`` = AAR_d16_bs2048): speed does not depend on the weights. Sampling uses the official
knobs (cfg 4, top-k 200, top-p 0.95). Each run is one ``gen.generate(clap, seconds=S, overlap=o)``
call, timed as a whole: for every window the 16 transformer steps on a batch of 2 (conditional and
unconditional), the decode, and for every window after the first the encode of the overlap audio.
A plain one-window ``generate`` is timed too, as the floor. The table goes to stdout; the last line is
one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

from aar import AARConfig, AARGenerator, SATConfig, SATTokenizer

TINY_SAT = SATConfig(n_filters=4, dimension=8, latent_dim=8, codebook_size=64)
TINY_AAR = AARConfig(depth=1, embed_dim=64, num_heads=1, latent_dim=8, codebook_size=64)


def build(tiny: bool, device: str) -> AARGenerator:
    torch.manual_seed(0)
    tok = SATTokenizer(TINY_SAT if tiny else SATConfig())
    return AARGenerator(TINY_AAR if tiny else AARConfig(), tok).to(device).eval()


def timed(fn) -> tuple[float, object]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def long_run(gen, clap, seconds: float, overlap: float, knobs: dict) -> tuple[float, int, int]:
    """One timed long generation: (wall seconds, windows, output samples)."""
    windows = set()
    wall, audio = timed(lambda: gen.generate(clap, seconds=seconds, overlap=overlap, seed=0,
                                             callback=lambda p: windows.add(p.window), **knobs))
    return wall, len(windows), audio.shape[-1]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run per overlap (released sizes)")
    parser.add_argument("--tiny", action="store_true", help="tiny model and 3 s (for tests)")
    parser.add_argument("--seconds", type=float, help="seconds to generate (default 10; 3 tiny)")
    parser.add_argument("--overlaps", default="0.25,0.5", help="comma-separated overlaps in seconds")
    parser.add_argument("--runs", type=int, help="runs per overlap (default 2; 1 quick or tiny)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice; 1 tiny)")
    args = parser.parse_args(argv)
    seconds = args.seconds or (3.0 if args.tiny else 10.0)
    runs = args.runs or (1 if args.quick or args.tiny else 2)
    try:
        overlaps = [float(o) for o in args.overlaps.split(",") if o.strip()]
    except ValueError:
        parser.error(f"--overlaps must be comma-separated numbers, got {args.overlaps!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.tiny:  # a tiny model gains nothing from threads, and loses much on a busy machine
        torch.set_num_threads(1)

    load_before = round(os.getloadavg()[0], 2)  # other work on the machine skews every figure
    gen = build(args.tiny, args.device)
    clap = torch.randn(1, 512, generator=torch.Generator().manual_seed(0))
    clap = clap / clap.norm()
    knobs = dict(cfg=4.0, top_k=min(200, gen.config.codebook_size), top_p=0.95)
    gen.generate(clap, seed=0, **knobs)  # warm-up
    one_window = min(timed(lambda: gen.generate(clap, seed=0, **knobs))[0] for _ in range(runs))
    results = []
    for overlap in overlaps:
        best, windows, samples = min(long_run(gen, clap, seconds, overlap, knobs) for _ in range(runs))
        results.append({
            "overlap": overlap,
            "windows": windows,
            "output_samples": samples,
            "seconds": round(best, 3),
            "seconds_per_generated_second": round(best / seconds, 4),
            "seconds_per_window": round(best / windows, 4),
        })

    report = {
        "benchmark": "long_generation",
        "model": "tiny" if args.tiny else "AARConfig() + SATConfig() (released sizes, random weights)",
        "device": str(gen.device),
        "generated_seconds": seconds,
        "runs": runs,
        "sampling": knobs,
        "one_window_seconds": round(one_window, 4),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_1min": {"before": load_before, "after": round(os.getloadavg()[0], 2)},
        "results": results,
    }
    print(f"{seconds:g} s of audio on {report['device']}; one window alone: {one_window:.3f} s "
          f"(best of {runs})")
    print(f"{'overlap':>8} {'windows':>8} {'seconds':>9} {'s/gen. s':>9} {'s/window':>9}")
    for r in results:
        print(f"{r['overlap']:>8.2f} {r['windows']:>8d} {r['seconds']:>9.2f} "
              f"{r['seconds_per_generated_second']:>9.3f} {r['seconds_per_window']:>9.3f}")
    print(json.dumps(report))
    sys.stdout.flush()
    return report


if __name__ == "__main__":
    main()
