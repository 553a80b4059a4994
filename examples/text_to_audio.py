"""Generate one second of audio from a text prompt.

    python examples/text_to_audio.py "a dog barking in the rain" --model qiuk6/AAR --out dog.wav

The prompt is embedded by CLAP (``pip install "aar-audio[clap]"``; the weights download on first
use). ``--clap FILE.npy`` uses a CLAP text embedding computed earlier instead, so no CLAP model is
loaded; the prompt is then only a label.
"""

import argparse
import sys

import numpy as np

from aar import AARGenerator, ClapEncoder
from aar.audio import write_audio
from aar.cli import run_script


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompt", nargs="?", default="a dog barking in the rain")
    parser.add_argument("--model", default="qiuk6/AAR", help="generator: Hub id, official .pth or folder")
    parser.add_argument("--tokenizer", default=None, help="paired tokenizer, for an official AAR .pth")
    parser.add_argument("--clap", default=None, help="precomputed CLAP embedding (.npy, 512 floats)")
    parser.add_argument("--out", default="text_to_audio.wav")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cfg", type=float, default=4.0, help="guidance strength")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    if args.clap is None:
        ClapEncoder.check_installed()  # a missing extra fails now, before the generator loads
    gen = AARGenerator.from_pretrained(args.model, tokenizer=args.tokenizer, device=args.device)
    if args.clap is not None:
        wav = gen.generate(np.load(args.clap), cfg=args.cfg, seed=args.seed)
    else:
        wav = gen.generate(prompt=args.prompt, cfg=args.cfg, seed=args.seed)  # (1, 1, 24000)
    write_audio(args.out, wav[0], gen.sample_rate)
    print(f"{args.prompt!r} -> {args.out} ({wav.shape[-1] / gen.sample_rate:.1f} s, seed {args.seed})")


if __name__ == "__main__":
    sys.exit(run_script(main))  # errors as one line, as the aar command prints them
