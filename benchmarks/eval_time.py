"""Expected run time of reproducing the paper's SAT and AAR tables: each step per clip, then totals.

    python benchmarks/eval_time.py                 # released sizes, best of 2 per step
    python benchmarks/eval_time.py --quick         # released sizes, one run per step
    python benchmarks/eval_time.py --tiny          # tiny models and 1-s clips (for tests)
    python benchmarks/eval_time.py --clips 975 --cfgs 9   # totals for another set size

The tokenizers and the generator have random weights of the released sizes (``SATConfig()`` =
SAT_d128_lat128, ``SATConfig(dimension=1024, latent_dim=64)`` = SAT_bs_1536_d1024_lat64,
``AARConfig()`` = AAR_d16_bs2048), and so have VGGish and the 16-kHz CNN14: speed does not depend on
the values. The evaluation clips are synthetic 10-s WAV files at 48 kHz (the rate of most AudioSet
audio), so reading and resampling are timed too. Steps, each the best of the runs:

- ``sat``, ``sat_d1024``: ``tok.decode(tok.encode(clip))`` of one 10-s clip;
- ``window_scores``: mel distance (``official``), STFT distance and SI-SDR of its ten 1-s windows;
- ``vggish_windows``: VGGish frames of those 20 windows (originals and reconstructions) as
  ``aar eval reconstruct --protocol paper`` prepares them (each padded to 2 s at 16 kHz);
- ``reconstruct``: ``evaluate_reconstruction`` with VGGish on two 10-s files, per file: all of the
  above for SAT_d128_lat128 and the reading, what ``aar eval reconstruct`` costs per clip;
- ``vggish_file`` and ``cnn14_file``: one 10-s file read, prepared and embedded (the reference set
  of ``aar eval generate``) or classified (the source clips KL pairs with, at every guidance value);
- ``vggish_generated`` and ``cnn14_generated``: the same for one generated 1-s clip;
- ``generate_fp32``, ``generate_int8``: ``gen.generate(clap, cfg=4, seed=0)``, one 1-s clip at batch
  1 (what ``aar eval generate`` draws per condition and guidance value), float32 and int8;
- ``generate_10s_fp32``, ``generate_10s_int8``: ``gen.generate(clap, cfg=4, seconds=10)``, a 10-s clip
  of windows chained by inpainting.

The 1-minute load average after each step is printed beside it: on a shared machine it says what the
step competed with. Totals, for ``--clips`` evaluation clips (default 17,142: the AudioSet evaluation
clips still downloadable in March 2023, of 20,371 listed) and ``--cfgs`` guidance values (default 9,
the paper's 2 to 18): the SAT table is ``clips x reconstruct`` per tokenizer (``sat_d1024`` replacing
``sat`` for the other one); the AAR table is ``clips x vggish_file`` once plus, per guidance value,
``clips x (generate + vggish_generated + cnn14_generated + cnn14_file)``, one 1-s clip per evaluation
clip. The CLAP embeddings of the conditions (``--clap-from``) are not timed: no CLAP weights here. The table
goes to stdout; the last line is one JSON object.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from pathlib import Path

import torch
from _common import build_generator, clap_vectors, emit, machine, parser, setup, sizes, table, tone_audio

from aar import SATConfig, SATTokenizer
from aar.audio import write_audio
from aar.evaluation import evaluate_reconstruction
from aar.evaluation.round_trip import score_windows
from aar.evaluation.sets import embed_audio
from aar.metrics import PANNsCNN14At16k, VGGish, get_protocol
from aar.precision.policy import apply_precision

RATE = 24_000
FILE_RATE = 48_000
#: AudioSet evaluation clips still downloadable in March 2023 (of 20,371 listed).
AUDIOSET_EVAL_CLIPS = 17_142
#: The paper's guidance sweep: 2, 4, ..., 18.
PAPER_CFGS = 9


#: The 1-minute load average after each step (the machine may be shared: it says what a step competed with).
LOADS: list[float] = []


def best(fn, runs: int) -> float:
    seconds = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        seconds = min(seconds, time.perf_counter() - start)
    LOADS.append(round(os.getloadavg()[0], 2))
    return round(seconds, 3)


@torch.no_grad()
def measure(tiny: bool, runs: int, folder: Path) -> dict:
    seconds = 1.0 if tiny else 10.0
    protocol = get_protocol("paper")
    files = [folder / f"clip_{i}.wav" for i in range(2)]
    for i, path in enumerate(files):
        write_audio(path, tone_audio(seconds, FILE_RATE, seed=i)[0], FILE_RATE)
    wav = tone_audio(seconds, RATE)
    torch.manual_seed(0)
    sat_config, _ = sizes(tiny)
    tok = SATTokenizer(sat_config).eval()
    wide = SATTokenizer(sat_config if tiny else SATConfig(dimension=1024, latent_dim=64)).eval()
    vggish, cnn14 = VGGish().eval(), PANNsCNN14At16k().eval()
    est = tok.decode(tok.encode(wav, RATE))
    ref_W1T, est_W1T = (x[..., : wav.shape[-1]].reshape(-1, 1, RATE) for x in (wav, est))
    generated = folder / "generated.wav"
    write_audio(generated, est[0, :, :RATE], RATE)

    def vggish_of(path):
        return vggish.embed_frames(protocol.loading.load(path, 16_000))

    def cnn14_of(path):
        return cnn14.logits(protocol.classifier_loading.load(path, 16_000))

    t = {
        "sat": best(lambda: tok.decode(tok.encode(wav, RATE)), runs),
        "sat_d1024": best(lambda: wide.decode(wide.encode(wav, RATE)), runs),
        "window_scores": best(lambda: score_windows(ref_W1T, est_W1T, RATE, protocol), runs),
        "vggish_windows": best(lambda: [embed_audio(x, RATE, vggish, protocol.loading)
                                        for x in (ref_W1T, est_W1T)], runs),
        "reconstruct": best(lambda: evaluate_reconstruction(tok, files, extractor=vggish), runs) / len(files),
        "vggish_file": best(lambda: vggish_of(files[0]), runs),
        "cnn14_file": best(lambda: cnn14_of(files[0]), runs),
        "vggish_generated": best(lambda: vggish_of(generated), runs),
        "cnn14_generated": best(lambda: cnn14_of(generated), runs),
    }
    clap = clap_vectors(1)
    for precision in ("fp32", "int8"):
        gen = apply_precision(build_generator(tiny), precision)
        t[f"generate_{precision}"] = best(functools.partial(gen.generate, clap, cfg=4.0, seed=0), runs)
        t[f"generate_10s_{precision}"] = best(
            functools.partial(gen.generate, clap, cfg=4.0, seed=0, seconds=seconds), runs)
    return {name: round(value, 3) for name, value in t.items()}


def totals(t: dict, clips: int, cfgs: int) -> dict:
    """Hours for the whole tables from the per-clip seconds ``t``."""
    def hours(s: float) -> float:
        return round(s / 3600, 2)

    per_cfg = {p: t[f"generate_{p}"] + t["vggish_generated"] + t["cnn14_generated"] + t["cnn14_file"]
               for p in ("fp32", "int8")}
    return {
        "sat_d128_hours": hours(clips * t["reconstruct"]),
        "sat_d1024_hours": hours(clips * (t["reconstruct"] - t["sat"] + t["sat_d1024"])),
        "aar_fp32_hours": hours(clips * (t["vggish_file"] + cfgs * per_cfg["fp32"])),
        "aar_int8_hours": hours(clips * (t["vggish_file"] + cfgs * per_cfg["int8"])),
        "aar_per_clip_and_cfg_s": {p: round(v, 3) for p, v in per_cfg.items()},
    }


def main(argv=None) -> dict:
    p = parser(__doc__)
    p.add_argument("--runs", type=int, default=None, help="runs per step (default 2; --quick 1)")
    p.add_argument("--clips", type=int, default=AUDIOSET_EVAL_CLIPS, help="evaluation clips for the totals")
    p.add_argument("--cfgs", type=int, default=PAPER_CFGS, help="guidance values for the totals")
    args = p.parse_args(argv)
    setup(args)
    runs = args.runs or (1 if args.quick or args.tiny else 2)
    info = machine(args.tiny)
    LOADS.clear()
    with tempfile.TemporaryDirectory() as folder:
        t = measure(args.tiny, runs, Path(folder))
    loads = dict(zip(t, LOADS))
    table(["step", "seconds per clip", "load after"], [(k, v, loads[k]) for k, v in t.items()])
    total = totals(t, args.clips, args.cfgs)
    print(f"for {args.clips} clips and {args.cfgs} guidance values:")
    table(["table", "hours"], [(k, v) for k, v in total.items() if k.endswith("hours")])
    return emit({"benchmark": "eval_time", "model": "tiny" if args.tiny else "released", "runs": runs,
                 "clip_seconds": 1.0 if args.tiny else 10.0, "clips": args.clips, "cfgs": args.cfgs,
                 "seconds_per_clip": t, "load_after_step": loads, "totals": total,
                 "machine": info})


if __name__ == "__main__":
    main()
