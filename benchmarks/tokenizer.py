"""Tokenizer throughput and memory: real-time factors, window batch sweep, plain loop, peak RSS.

    python benchmarks/tokenizer.py            # released size; 1 s, 60 s, 10 min; sweep on 60 s; 2 runs
    python benchmarks/tokenizer.py --quick    # released size; the same once, sweep on 20 s
    python benchmarks/tokenizer.py --tiny     # a tiny model and short audio (for tests)

The tokenizer has random weights of the released size (``SATConfig()`` = SAT_d128_lat128): speed does
not depend on the weights. Audio is synthetic (tones over noise) at 24 kHz, so nothing is resampled.
The real-time factor (RTF) is processing seconds per audio second: below 1 is faster than real time.

- ``durations``: ``tok.encode`` and ``tok.decode`` at the default window batch
  (``aar.tokenizer.DEFAULT_WINDOW_BATCH``).
- ``sweep``: the same on one clip for window batch sizes 1 to 64.
- ``plain_loop``: one window at a time through the encoder, quantizer and decoder modules directly,
  against the library at its default, the two taking turns (best of at least 3 each); the codes
  must be identical.
- ``peak_rss``: a fresh process encodes and decodes the longest clip; its peak resident memory.
- ``bfloat16``: the tokenizer in bfloat16 (``precision="bf16"``) against float32 on a 10 s clip, the
  two taking turns (best of at least 3 each): speed, code agreement, audio error of decoding float32's
  codes. ``--precision-only`` runs just this part (and the machine line).

The table goes to stdout; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import time

import torch
from _common import emit, machine, parser, setup, sizes, table, tone_audio

from aar import SATTokenizer
from aar.tokenizer import DEFAULT_WINDOW_BATCH

RATE = 24000


def audio(seconds: float, seed: int = 0) -> torch.Tensor:
    """Deterministic test audio (1, 1, T) at 24 kHz."""
    return tone_audio(seconds, RATE, seed)


def build(tiny: bool) -> SATTokenizer:
    torch.manual_seed(0)
    return SATTokenizer(sizes(tiny)[0]).eval()


def best(fn, runs: int) -> tuple[float, object]:
    out, seconds = None, float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        seconds = min(seconds, time.perf_counter() - start)
    return seconds, out


@torch.no_grad()
def plain_encode(tok: SATTokenizer, wav_11T: torch.Tensor) -> list[torch.Tensor]:
    """One window per forward pass, straight through the modules: S tensors (W, s_i)."""
    window = tok.config.window
    W = -(-wav_11T.shape[-1] // window)
    padded = torch.nn.functional.pad(wav_11T, (0, W * window - wav_11T.shape[-1]))
    per_window = [tok.quantizer.encode(tok.encoder(padded[..., w * window : (w + 1) * window]))
                  for w in range(W)]
    return [torch.cat(scale) for scale in zip(*per_window)]


@torch.no_grad()
def plain_decode(tok: SATTokenizer, codes: list[torch.Tensor]) -> torch.Tensor:
    """One window per forward pass: (1, 1, W * window)."""
    q = tok.quantizer
    pieces = [tok.decoder(q.to_decoder(q.decode_latent([c[w : w + 1] for c in codes])))
              for w in range(codes[0].shape[0])]
    return torch.cat(pieces, dim=-1)


def rss_child(seconds: float, tiny: bool) -> None:
    """Run in a fresh process: encode and decode ``seconds`` of audio, print peak RSS as JSON."""
    tok = build(tiny)
    wav = audio(seconds)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux -> MiB
    codes = tok.encode(wav, RATE)
    after_encode = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tok.decode(codes)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_before_mib": round(before, 1),
                      "peak_after_encode_mib": round(after_encode, 1), "peak_mib": round(peak, 1)}))


def peak_rss(seconds: float, tiny: bool, threads: int) -> dict:
    command = [sys.executable, __file__, "--rss-child", str(seconds), "--threads", str(threads)]
    run = subprocess.run(command + (["--tiny"] if tiny else []), capture_output=True, text=True,
                         check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def precision_check(tok: SATTokenizer, wav: torch.Tensor, runs: int) -> dict:
    """bfloat16 against float32, taking turns: encode and decode speed, codes, audio error."""
    low = copy.deepcopy(tok).to(torch.bfloat16)
    f32_enc = bf_enc = f32_dec = bf_dec = float("inf")
    for _ in range(max(runs, 3)):
        seconds, f32_codes = best(lambda: tok.encode(wav, RATE), 1)
        f32_enc = min(f32_enc, seconds)
        seconds, bf_codes = best(lambda: low.encode(wav, RATE), 1)
        bf_enc = min(bf_enc, seconds)
        seconds, f32_audio = best(lambda: tok.decode(f32_codes), 1)  # noqa: B023
        f32_dec = min(f32_dec, seconds)
        seconds, bf_audio = best(lambda: low.decode(f32_codes), 1)  # noqa: B023
        bf_dec = min(bf_dec, seconds)
    return {
        "audio_s": wav.shape[-1] / RATE,
        "float32_encode_s": round(f32_enc, 4), "bfloat16_encode_s": round(bf_enc, 4),
        "float32_decode_s": round(f32_dec, 4), "bfloat16_decode_s": round(bf_dec, 4),
        "encode_speedup": round(f32_enc / bf_enc, 3), "decode_speedup": round(f32_dec / bf_dec, 3),
        "code_agreement": [round(float((a == b).float().mean()), 4) for a, b in zip(f32_codes, bf_codes)],
        "decode_max_abs_diff": float((bf_audio - f32_audio).abs().max()),
        "audio_rms": float(f32_audio.pow(2).mean().sqrt()),
    }


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__)
    p.add_argument("--runs", type=int, help="timed runs per point, best kept (default 2; 1 quick/tiny)")
    p.add_argument("--rss-child", type=float, help=argparse.SUPPRESS)
    p.add_argument("--precision-only", action="store_true", help="only bfloat16 against float32")
    args = p.parse_args(argv)
    setup(args)
    torch.set_grad_enabled(False)
    if args.rss_child:
        return rss_child(args.rss_child, args.tiny)
    runs = args.runs or (1 if args.quick or args.tiny else 2)
    durations = [1.0, 4.0, 10.0] if args.tiny else [1.0, 60.0, 600.0]
    sweep_seconds = 4.0 if args.tiny else 20.0 if args.quick else 60.0
    tok = build(args.tiny)
    tok.encode(audio(1.0), RATE)  # warm-up
    if args.precision_only:
        bfloat16 = precision_check(tok, audio(min(10.0, durations[-1])), runs)
        print(f"bfloat16 / float32 speed: encode {bfloat16['encode_speedup']:.2f}x, decode "
              f"{bfloat16['decode_speedup']:.2f}x; decode max abs diff {bfloat16['decode_max_abs_diff']:.3g}")
        name = "tiny" if args.tiny else "SATConfig() (random weights)"
        return emit({"benchmark": "tokenizer", "model": name, "runs": runs, "bfloat16": bfloat16,
                     "machine": machine(args.tiny)})

    rows = []
    for seconds in durations:
        wav = audio(seconds)
        enc, codes = best(lambda: tok.encode(wav, RATE), runs)  # noqa: B023
        dec, _ = best(lambda: tok.decode(codes), runs)  # noqa: B023
        rows.append({"audio_s": seconds, "encode_s": round(enc, 4), "decode_s": round(dec, 4),
                     "encode_rtf": round(enc / seconds, 4), "decode_rtf": round(dec / seconds, 4)})

    wav = audio(sweep_seconds)
    sweep = []
    for size in (1, 2, 4, 8, 16, 32, 64):
        enc, codes = best(lambda: tok.encode(wav, RATE, batch_size=size), runs)  # noqa: B023
        dec, _ = best(lambda: tok.decode(codes, batch_size=size), runs)  # noqa: B023
        sweep.append({"window_batch": size, "encode_rtf": round(enc / sweep_seconds, 4),
                      "decode_rtf": round(dec / sweep_seconds, 4)})

    lib_enc = plain_enc = lib_dec = plain_dec = float("inf")
    for _ in range(max(runs, 3)):  # interleaved, so both see the same machine load
        seconds, lib_codes = best(lambda: tok.encode(wav, RATE), 1)
        lib_enc = min(lib_enc, seconds)
        seconds, plain_codes = best(lambda: plain_encode(tok, wav), 1)
        plain_enc = min(plain_enc, seconds)
        seconds, lib_audio = best(lambda: tok.decode(lib_codes), 1)  # noqa: B023
        lib_dec = min(lib_dec, seconds)
        seconds, plain_audio = best(lambda: plain_decode(tok, plain_codes), 1)  # noqa: B023
        plain_dec = min(plain_dec, seconds)
    plain = {
        "audio_s": sweep_seconds, "window_batch": DEFAULT_WINDOW_BATCH,
        "codes_identical": all(torch.equal(a[0], b) for a, b in zip(lib_codes, plain_codes)),
        "audio_max_abs_diff": float((lib_audio - plain_audio[..., : lib_audio.shape[-1]]).abs().max()),
        "library_encode_s": round(lib_enc, 4), "plain_encode_s": round(plain_enc, 4),
        "library_decode_s": round(lib_dec, 4), "plain_decode_s": round(plain_dec, 4),
        "encode_ratio": round(plain_enc / lib_enc, 3), "decode_ratio": round(plain_dec / lib_dec, 3),
    }

    bfloat16 = precision_check(tok, audio(min(10.0, durations[-1])), runs)
    rss = peak_rss(durations[-1], args.tiny, torch.get_num_threads())

    print(f"real-time factors (processing s per audio s; best of {runs}), window batch "
          f"{DEFAULT_WINDOW_BATCH}")
    table(["audio s", "encode s", "decode s", "encode RTF", "decode RTF"],
          [[r["audio_s"], r["encode_s"], r["decode_s"], r["encode_rtf"], r["decode_rtf"]] for r in rows])
    print(f"window batch sweep on {sweep_seconds:g} s")
    table(["window batch", "encode RTF", "decode RTF"],
          [[s["window_batch"], s["encode_rtf"], s["decode_rtf"]] for s in sweep])
    print(f"plain one-window loop / library: encode {plain['encode_ratio']:.2f}x, decode "
          f"{plain['decode_ratio']:.2f}x; identical codes: {plain['codes_identical']}")
    print(f"bfloat16 / float32 speed: encode {bfloat16['encode_speedup']:.2f}x, decode "
          f"{bfloat16['decode_speedup']:.2f}x; decode max abs diff {bfloat16['decode_max_abs_diff']:.3g}")
    print(f"peak RSS encoding + decoding {rss['seconds']:g} s: {rss['peak_mib']:.0f} MiB "
          f"({rss['rss_before_mib']:.0f} MiB before)")
    return emit({"benchmark": "tokenizer", "model": "tiny" if args.tiny else "SATConfig() (random weights)",
                 "runs": runs, "default_window_batch": DEFAULT_WINDOW_BATCH, "durations": rows,
                 "sweep_audio_s": sweep_seconds, "sweep": sweep, "plain_loop": plain,
                 "bfloat16": bfloat16, "peak_rss": rss, "machine": machine(args.tiny)})


if __name__ == "__main__":
    main()
