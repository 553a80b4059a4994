"""Listen to the scales: decode the same codes from their first k scales only.

    python examples/coarse_to_fine.py song.wav --model qiuk6/AAR --out-dir previews --scales 1 4 8 16

Scale 1 holds one token per second, scale 16 holds 75; decoding from the first k scales gives a
preview that gets finer as k grows. Writes ``preview_kXX.wav`` for each k and prints its SNR against
the input (mono, 24 kHz). Without an input file a test tone is used.
"""

import argparse
import math
import sys
from pathlib import Path

import torch

from aar import SATTokenizer, load_audio
from aar.audio import AUDIO_EXTENSIONS, resample, to_mono, write_audio
from aar.cli import run_script


def test_tone(seconds: float = 2.0, rate: int = 24000) -> tuple[torch.Tensor, int]:
    """A (1, T) rising sweep with a beat: coarse scales keep the envelope, fine ones the pitch."""
    t = torch.arange(round(seconds * rate)) / rate
    sweep = torch.sin(2 * math.pi * (200 * t + 150 * t**2))
    return (0.5 * sweep * (t * 4 % 1 < 0.5)).unsqueeze(0), rate


def snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """Signal-to-noise ratio of ``estimate`` against ``reference``, in dB."""
    noise = (reference - estimate).pow(2).sum().clamp_min(1e-12)
    return float(10 * torch.log10(reference.pow(2).sum() / noise))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?",
                        help=f"audio file ({' '.join(AUDIO_EXTENSIONS)}); default: a test tone")
    parser.add_argument("--model", default="qiuk6/AAR", help="tokenizer: Hub id, official .pth or folder")
    parser.add_argument("--out-dir", default="previews", help="folder for the previews")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4, 8, 12, 16],
                        help="numbers of scales to decode from")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    wav, rate = load_audio(args.input) if args.input else test_tone()  # (C, T)
    wav = wav.unsqueeze(0)  # (1, C, T): one clip, whatever its number of channels
    tok = SATTokenizer.from_pretrained(args.model, device=args.device)
    S = tok.config.num_scales
    if not all(1 <= k <= S for k in args.scales):  # before the encoding, not after it
        raise ValueError(f"--scales must each lie in [1, {S}] for this model, got {args.scales}")
    codes = tok.encode(wav, sample_rate=rate)
    reference = resample(to_mono(wav), rate, tok.sample_rate)
    out_dir = Path(args.out_dir)
    for k in args.scales:
        preview = tok.decode(codes, num_scales=k)  # (1, 1, T) from scales 1..k
        path = write_audio(out_dir / f"preview_k{k:02d}.wav", preview[0], tok.sample_rate)
        tokens = sum(tok.config.scales[:k])
        snr = snr_db(reference.cpu(), preview.cpu())
        print(f"k={k:2d}: {tokens:3d} tokens per window, SNR {snr:6.2f} dB -> {path}")


if __name__ == "__main__":
    sys.exit(run_script(main))  # errors as one line, as the aar command prints them
