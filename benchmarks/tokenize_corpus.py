"""Corpus tokenization throughput: clips per second of ``aar.data.tokenize_folder`` in three modes.

    python benchmarks/tokenize_corpus.py            # 200 clips of 10 s, released model size
    python benchmarks/tokenize_corpus.py --quick    # 40 clips, released model size
    python benchmarks/tokenize_corpus.py --tiny     # a tiny model and a few short clips (for tests)

The model has random weights (``SATConfig()``, the size of the released SAT_d128_lat128): speed does not
depend on the weights. Clips are synthetic 16-bit WAV files (noise plus tones) written to a temporary
folder. Modes: one process (``num_proc=1``), ``num_proc=2`` worker processes, and a local Ray instance
started with 2 CPUs (``ray_address="local"`` on it). Each timing covers the whole call: listing files,
workers loading the model, decoding, encoding and writing Parquet shards; Ray's own start-up is timed
apart. The table goes to stdout; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from aar import SATConfig, SATTokenizer
from aar.data import tokenize_folder

TINY = SATConfig(n_filters=4, dimension=8, latent_dim=8, codebook_size=64)
MODES = ("single", "num_proc", "ray")


def write_clips(folder: Path, count: int, seconds: float, rate: int) -> None:
    """Deterministic synthetic clips: decaying tones over low-level noise, 16-bit PCM."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    for i in range(count):
        freqs = rng.uniform(80, 4000, size=3)
        wav = sum(np.sin(2 * np.pi * f * t) * np.exp(-t * rng.uniform(0.1, 2)) for f in freqs) / 4
        wav = wav + 0.05 * rng.standard_normal(t.shape)
        sf.write(folder / f"clip_{i:04d}.wav", wav.astype(np.float32), rate, subtype="PCM_16")


def read_rows(folder: Path):
    import pyarrow.parquet as pq

    return pq.read_table(sorted(folder.glob("shard-*.parquet")))


def run_mode(mode: str, clips: Path, out: Path, model: Path, args) -> dict:
    kwargs = {"single": {}, "num_proc": {"num_proc": args.num_proc}, "ray": {"ray_address": "local"}}[mode]
    start = time.perf_counter()
    summary = tokenize_folder(clips, out, model, shard_size=args.shard_size, progress=False, **kwargs)
    seconds = time.perf_counter() - start
    if summary.rows != args.clips or summary.errors:
        raise RuntimeError(f"{mode}: expected {args.clips} rows and no errors, got {summary}")
    workers = {"single": 1, "num_proc": args.num_proc, "ray": args.ray_cpus}[mode]
    return {
        "mode": mode,
        "workers": workers,
        "seconds": round(seconds, 3),
        "clips_per_second": round(args.clips / seconds, 3),
        "audio_seconds_per_second": round(args.clips * args.seconds / seconds, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 clips instead of 200 (released size)")
    parser.add_argument("--tiny", action="store_true", help="tiny model, 4 clips of 2 s (for tests)")
    parser.add_argument("--clips", type=int, help="number of clips (default 200; 40 quick; 4 tiny)")
    parser.add_argument("--seconds", type=float, help="clip duration (default 10; 2 tiny)")
    parser.add_argument("--sample-rate", type=int, default=24000, help="rate of the clips (Hz)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {MODES}")
    parser.add_argument("--num-proc", type=int, default=2, help="processes in the num_proc mode")
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--shard-size", type=int, default=50, help="files per Parquet shard")
    parser.add_argument("--threads", type=int, help="torch threads of this process (the single mode)")
    args = parser.parse_args(argv)
    args.clips = args.clips or (4 if args.tiny else 40 if args.quick else 200)
    args.seconds = args.seconds or (2.0 if args.tiny else 10.0)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes must be a comma-separated subset of {MODES}, got {args.modes!r}")

    load_before = round(os.getloadavg()[0], 2)  # other work on the machine skews every figure
    torch.manual_seed(0)
    if args.threads or args.tiny:  # a tiny model gains nothing from threads
        torch.set_num_threads(args.threads or 1)
    config = TINY if args.tiny else SATConfig()
    with tempfile.TemporaryDirectory(prefix="aar-bench-") as tmp:
        tmp = Path(tmp)
        model = SATTokenizer(config).eval().save_pretrained(tmp / "model")
        clips = tmp / "clips"
        clips.mkdir()
        write_clips(clips, args.clips, args.seconds, args.sample_rate)
        results, tables, ray_init = [], [], None
        for mode in modes:
            if mode == "ray":
                import ray

                start = time.perf_counter()
                ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
                ray_init = round(time.perf_counter() - start, 3)
            try:
                results.append(run_mode(mode, clips, tmp / f"out-{mode}", model, args))
            finally:
                if mode == "ray":
                    ray.shutdown()
            tables.append(read_rows(tmp / f"out-{mode}"))
        identical = all(t.equals(tables[0]) for t in tables[1:])

    report = {
        "benchmark": "tokenize_corpus",
        "model": "tiny" if args.tiny else "SATConfig() (released SAT_d128_lat128 size, random weights)",
        "clips": args.clips,
        "clip_seconds": args.seconds,
        "sample_rate": args.sample_rate,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "ray_init_seconds": ray_init,
        "load_average_1min": {"before": load_before, "after": round(os.getloadavg()[0], 2)},
        "identical_outputs": identical,
        "results": results,
    }
    print(f"{'mode':<10} {'workers':>7} {'seconds':>9} {'clips/s':>9} {'audio s/s':>10}")
    for r in results:
        print(f"{r['mode']:<10} {r['workers']:>7} {r['seconds']:>9.2f} {r['clips_per_second']:>9.2f} "
              f"{r['audio_seconds_per_second']:>10.1f}")
    if ray_init is not None:
        print(f"(Ray start-up, not included above: {ray_init:.1f} s)")
    print(json.dumps(report))
    sys.stdout.flush()
    return report


if __name__ == "__main__":
    main()
