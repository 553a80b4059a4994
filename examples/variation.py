"""Generate variations of a sound: one second of new audio conditioned on a reference clip.

    python examples/variation.py reference.wav --model qiuk6/AAR --num 4 --out-dir variations

The reference is embedded by CLAP's audio tower (``pip install "aar-audio[clap]"``) once, and each
variation is drawn from that embedding with its own seed. ``gen.generate(audio=wav,
sample_rate=rate)`` does both steps in one call. ``--clap FILE.npy`` uses a CLAP audio embedding
computed earlier instead, so no CLAP model is loaded. Without an input file a test tone is used.
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from aar import AARGenerator, ClapEncoder, load_audio
from aar.audio import AUDIO_EXTENSIONS, write_audio
from aar.cli import run_script


def test_tone(seconds: float = 2.0, rate: int = 24000) -> tuple[torch.Tensor, int]:
    """A (1, T) plucked-string-like tone: a decaying 440 Hz note every half second."""
    t = torch.arange(round(seconds * rate)) / rate
    return (0.5 * torch.sin(2 * math.pi * 440 * t) * torch.exp(-8 * (t % 0.5))).unsqueeze(0), rate


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?",
                        help=f"reference audio ({' '.join(AUDIO_EXTENSIONS)}); default: a test tone")
    parser.add_argument("--model", default="qiuk6/AAR", help="generator: Hub id, official .pth or folder")
    parser.add_argument("--tokenizer", default=None, help="paired tokenizer, for an official AAR .pth")
    parser.add_argument("--clap", default=None, help="precomputed CLAP embedding of the reference (.npy)")
    parser.add_argument("--num", type=int, default=3, help="number of variations")
    parser.add_argument("--out-dir", default="variations")
    parser.add_argument("--seed", type=int, default=0, help="variation i uses seed SEED + i")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    if args.clap is None:
        ClapEncoder.check_installed()  # a missing extra fails now, before the generator loads
    gen = AARGenerator.from_pretrained(args.model, tokenizer=args.tokenizer, device=args.device)
    if args.clap is not None:
        clap = gen.clap_vectors(np.load(args.clap))  # (1, 512)
    else:
        wav, rate = load_audio(args.input) if args.input else test_tone()  # (C, T)
        clap = gen.clap_vectors(audio=wav.unsqueeze(0), sample_rate=rate)  # one clip (1, C, T): (1, 512)
    for i in range(args.num):
        variation = gen.generate(clap, seed=args.seed + i)  # (1, 1, 24000)
        path = write_audio(Path(args.out_dir) / f"variation_{i}.wav", variation[0], gen.sample_rate)
        print(f"seed {args.seed + i} -> {path}")


if __name__ == "__main__":
    sys.exit(run_script(main))  # errors as one line, as the aar command prints them
