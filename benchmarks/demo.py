"""The demo page's speed: pressing Generate to the first preview and to the final audio; a load check.

    python benchmarks/demo.py                  # released size (random weights), fp32 and auto
    python benchmarks/demo.py --load           # 8 clients, 32 requests on the fixture model
    python benchmarks/demo.py --tiny           # tiny model, seconds of work (for tests)

Everything goes through the page's own API over the loopback address (``gradio_client``), as the
browser's Generate button does: the request is queued, each finished scale is decoded, written and
sent as a preview, then the final audio and its downloads. Times are seconds from submitting the
request to the arrival of the first preview (scale 1 of 16) and of the final audio, for one second
of audio, cfg 4, batch 1, the best and median of ``--repeats`` requests after one warm-up request.
``--load`` sends ``--requests`` requests from ``--clients`` concurrent clients, checks every answer
against the library's audio for its seed, and reports latency percentiles, throughput and the batch
size of every generation the model ran. Needs ``pip install "aar-audio[demo]"``.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from _common import RELEASED, build_generator, emit, machine, parser, setup, table

from aar.demo.engine import CONDITIONS

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "official_small"


@contextlib.contextmanager
def serving(gen, model: str, **limits):
    """The demo of ``gen`` on a free loopback port; yields (url, engine)."""
    import socket

    from aar.demo import DemoEngine, DemoSettings, launch

    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = DemoEngine(gen, model, DemoSettings(port=port, **limits))
    with tempfile.TemporaryDirectory(prefix="aar-demo-bench-") as folder:
        app = launch(engine, folder=folder, block=False)
        try:
            yield f"http://127.0.0.1:{port}/", engine
        finally:
            app.close()


def client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


def submit(c, seed: int):
    return c.submit(CONDITIONS[0], "", None, None, 4.0, 200, 0.95, 1.0, seed, 1.0, 1, api_name="/generate")


def press_generate(c, seed: int) -> dict:
    """Seconds from submitting one request to its first preview and to its final audio."""
    start = time.perf_counter()
    first = None
    job = submit(c, seed)
    for out in job:
        if first is None and "scale 1/16" in out[0]:
            first = time.perf_counter() - start
    job.result()
    final = time.perf_counter() - start
    status = job.outputs()[-1][0]
    assert status.startswith("done"), status
    return {"first_preview_s": first, "final_s": final}


def timings(gen, name: str, repeats: int) -> dict:
    with serving(gen, name) as (url, engine):
        c = client(url)
        press_generate(c, 0)  # warm-up
        runs = [press_generate(c, seed) for seed in range(1, repeats + 1)]
    out = {"runs_as": engine.precision}
    for key in ("first_preview_s", "final_s"):
        values = [r[key] for r in runs]
        out[key] = {"min": round(min(values), 3), "median": round(statistics.median(values), 3)}
    return out


def load_check(gen, model: str, clients: int, requests: int) -> dict:
    """``requests`` requests from ``clients`` concurrent clients; each answer checked against the library."""
    from aar import load_audio

    expected = {s: gen.generate(gen.transformer.uncond_clap(1), seed=s)[0] for s in range(requests)}
    batches = []
    original = gen.generate_codes

    def counted(clap_emb=None, **kwargs):
        batches.append(int(clap_emb.shape[0]))
        return original(clap_emb, **kwargs)

    gen.generate_codes = counted
    try:
        with serving(gen, model) as (url, _):
            pool = [client(url) for _ in range(clients)]

            def one(seed: int) -> tuple[float, bool]:
                start = time.perf_counter()
                job = submit(pool[seed % clients], seed)
                job.result(timeout=600)
                took = time.perf_counter() - start
                last = job.outputs()[-1]
                wav, _ = load_audio(last[4]["value"]["path"])
                return took, bool(torch.equal(wav, expected[seed].cpu()))

            start = time.perf_counter()
            with ThreadPoolExecutor(clients) as ex:
                answers = list(ex.map(one, range(requests)))
            wall = time.perf_counter() - start
    finally:
        del gen.generate_codes
    latencies = sorted(t for t, _ in answers)
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    return {"clients": clients, "requests": requests, "answered": len(answers),
            "correct": sum(ok for _, ok in answers), "lost": requests - len(answers),
            "p50_s": round(statistics.median(latencies), 3), "p95_s": round(p95, 3),
            "throughput_per_s": round(requests / wall, 3), "wall_s": round(wall, 2),
            "batch_sizes": sorted(set(batches)), "generations": len(batches)}


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__)
    p.add_argument("--load", action="store_true", help="the load check instead of the timings")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3, help="timed requests per precision")
    args = p.parse_args(argv)
    setup(args)
    report = {"benchmark": "demo", "machine": machine(args.tiny)}
    if args.load:
        from aar import AARGenerator

        if args.tiny:
            gen, report["model"] = build_generator(True), "tiny"
        else:
            gen = AARGenerator.from_pretrained(FIXTURE / "aar_official.pth",
                                               tokenizer=FIXTURE / "sat_official.pth")
            report["model"] = "tests/fixtures/official_small (depth 2, width 128)"
        report["load"] = load_check(gen, report["model"], args.clients, args.requests)
        r = report["load"]
        table(["clients", "requests", "answered", "correct", "p50 s", "p95 s", "req/s", "batch sizes"],
              [[r["clients"], r["requests"], r["answered"], r["correct"], r["p50_s"], r["p95_s"],
                r["throughput_per_s"], r["batch_sizes"]]])
        return emit(report)
    from aar.precision.policy import apply_precision, resolve_precision

    base = build_generator(args.tiny)
    report["model"] = "tiny" if args.tiny else RELEASED
    auto = resolve_precision("auto", None, torch.device("cpu"))
    rows = []
    for name in dict.fromkeys(["fp32", auto]):
        gen = base if name == "fp32" else apply_precision(copy.deepcopy(base), name)
        label = "fp32" if name == "fp32" else f"auto ({name})"
        result = timings(gen, label, args.repeats)
        report.setdefault("timings", []).append({"precision": label, **result})
        rows.append([label, result["first_preview_s"]["min"], result["first_preview_s"]["median"],
                     result["final_s"]["min"], result["final_s"]["median"]])
    table(["precision", "first preview min s", "median s", "final audio min s", "median s"], rows)
    return emit(report)


if __name__ == "__main__":
    main()
