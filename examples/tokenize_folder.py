"""Tokenize every audio file under a folder into one codes file each, mirroring the folder tree.

    python examples/tokenize_folder.py music/ music_codes/ --model qiuk6/AAR

Files are picked by the same extensions as ``aar tokenize`` (``aar.audio.AUDIO_EXTENSIONS``: wav,
flac, ogg, opus, mp3, aiff, ...) and read with ``aar.load_audio``. ``music/a/b.flac`` becomes
``music_codes/a/b.flac.codes`` (the audio extension is kept, so ``x.wav`` and ``x.flac`` never
collide). Files whose codes file exists are skipped, so an interrupted run can be resumed; files that
cannot be read are reported and the rest go on. Read one back with
``aar.loading.codes_file.load_codes(path, tokenizer)``. For large corpora, ``aar tokenize`` writes Parquet
shards and can use several processes or a Ray cluster.
"""

import argparse
import sys
from pathlib import Path

from tqdm.auto import tqdm

from aar import SATTokenizer, load_audio
from aar.audio import is_audio_file
from aar.cli import run_script
from aar.loading.codes_file import save_codes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input_dir", type=Path)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--model", default="qiuk6/AAR", help="tokenizer: Hub id, official .pth or folder")
    parser.add_argument("--overwrite", action="store_true", help="redo files that already have codes")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    files = sorted(p for p in args.input_dir.rglob("*") if is_audio_file(p))  # as `aar tokenize` picks
    tok = SATTokenizer.from_pretrained(args.model, device=args.device)
    written, skipped, failed = 0, 0, []
    for path in tqdm(files, desc="tokenize", unit="file", disable=args.quiet):
        rel = path.relative_to(args.input_dir)
        out = args.output_dir / rel.with_name(rel.name + ".codes")
        if out.exists() and not args.overwrite:
            skipped += 1
            continue
        try:
            wav, rate = load_audio(path)  # (C, T)
        except ValueError as err:  # unreadable or empty file: report it and go on
            failed.append(f"{rel}: {err}")
            continue
        codes = tok.encode(wav.unsqueeze(0), sample_rate=rate)  # one clip (1, C, T), any channel count
        save_codes(out, codes, tok, model=args.model)
        written += 1
    for line in failed:
        print(f"failed: {line}", file=sys.stderr)
    print(f"{written} written, {skipped} already there, {len(failed)} failed, under {args.output_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_script(main))  # errors as one line, as the aar command prints them
