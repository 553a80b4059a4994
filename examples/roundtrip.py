"""Encode audio into SAT tokens, decode it back, and print how close the result is.

    python examples/roundtrip.py song.flac --model qiuk6/AAR --out song_roundtrip.wav

Without an input file a two-second test tone is used. The SNR compares the decoded audio with the
input as the tokenizer sees it: mono, at 24 kHz.
"""

import argparse
import math
import sys

import torch

from aar import SATTokenizer, load_audio
from aar.audio import AUDIO_EXTENSIONS, resample, to_mono, write_audio
from aar.cli import run_script


def test_tone(seconds: float = 2.0, rate: int = 24000) -> tuple[torch.Tensor, int]:
    """A (1, T) chord with a slow tremolo: something to listen to when no file is given."""
    t = torch.arange(round(seconds * rate)) / rate
    chord = sum(torch.sin(2 * math.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3
    return (0.5 * chord * (0.75 + 0.25 * torch.sin(2 * math.pi * 2 * t))).unsqueeze(0), rate


def snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """Signal-to-noise ratio of ``estimate`` against ``reference``, in dB."""
    noise = (reference - estimate).pow(2).sum().clamp_min(1e-12)
    return float(10 * torch.log10(reference.pow(2).sum() / noise))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?",
                        help=f"audio file ({' '.join(AUDIO_EXTENSIONS)}); default: a test tone")
    parser.add_argument("--model", default="qiuk6/AAR", help="tokenizer: Hub id, official .pth or folder")
    parser.add_argument("--out", default="roundtrip.wav", help="where to write the decoded audio")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    wav, rate = load_audio(args.input) if args.input else test_tone()  # (C, T)
    wav = wav.unsqueeze(0)  # (1, C, T): one clip, whatever its number of channels
    tok = SATTokenizer.from_pretrained(args.model, device=args.device)
    codes = tok.encode(wav, sample_rate=rate)  # 16 scales, codes[i]: (1, W, s_i)
    decoded = tok.decode(codes)  # (1, 1, T at 24 kHz)

    reference = resample(to_mono(wav), rate, tok.sample_rate)  # (1, 1, T at 24 kHz)
    seconds = codes.length / tok.sample_rate
    print(f"{seconds:.2f} s -> {codes.num_windows} window(s) x {sum(codes.scales)} tokens "
          f"({len(codes)} scales of {tok.config.codebook_size} codes)")
    print(f"SNR: {snr_db(reference.cpu(), decoded.cpu()):.2f} dB")
    write_audio(args.out, decoded[0], tok.sample_rate)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(run_script(main))  # errors as one line, as the aar command prints them
