"""Loading time: ``from_pretrained`` of official ``.pth`` files against native safetensors folders.

    python benchmarks/load.py            # released sizes, 3 runs each
    python benchmarks/load.py --quick    # released sizes, 1 run each
    python benchmarks/load.py --tiny     # tiny models (for tests)

Random weights of the released sizes (``SATConfig()`` + ``AARConfig()``, 1.2 GB of float32) are
written to a temporary folder twice: as official checkpoints (``torch.save`` pickles in the layout of
``qiuk6/AAR``, weight norm split into ``weight_g``/``weight_v``, training buffers included) and with
``save_pretrained`` (``config.json`` + ``model.safetensors``). Then, for each:

- ``load_s``: ``AARGenerator.from_pretrained`` (generator and tokenizer), and
  ``SATTokenizer.from_pretrained`` alone;
- ``load_and_touch_s``: the same plus reading every weight once (a safetensors file is
  memory-mapped, so its pages are read when first used rather than in ``from_pretrained``).

The files were just written, so they sit in the page cache: these are warm-cache figures. For
reference, ``random_init_s`` builds the same models with random initialisation, the cost that loading
no longer pays (models are built on the meta device and adopt the checkpoint's tensors), and the row
"native, random init + copy (before)" loads the native folder the way ``from_pretrained`` did before
that change. The table goes to stdout; the last line is one JSON object.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch
from _common import RELEASED, emit, machine, parser, setup, sizes, table, timed
from official_layout import save_aar_official, save_sat_official

from aar import AARConfig, AARGenerator, SATConfig, SATTokenizer
from aar.loading.native import load_state_strict, read_native_weights


def write_files(folder: Path, tiny: bool) -> tuple[float, float]:
    """Write both layouts; returns the seconds random initialisation took (tokenizer, generator)."""
    sat, aar = sizes(tiny)
    torch.manual_seed(0)
    start = time.perf_counter()
    tok = SATTokenizer(sat)
    tok_s = time.perf_counter() - start
    gen = AARGenerator(aar, tok)
    gen_s = time.perf_counter() - start
    save_sat_official(tok, folder / "SAT.pth")
    save_aar_official(gen, folder / "AAR.pth")
    gen.save_pretrained(folder / "native")
    return tok_s, gen_s


def load_with_init(folder: Path) -> AARGenerator:
    """The loading path before models were built on the meta device: random init, then a copy."""
    tok = SATTokenizer(SATConfig.from_dict(json.loads((folder / "tokenizer" / "config.json").read_text())))
    load_state_strict(tok, read_native_weights(folder / "tokenizer"), "tokenizer")
    gen = AARGenerator(AARConfig.from_dict(json.loads((folder / "config.json").read_text())), tok)
    load_state_strict(gen.transformer, read_native_weights(folder), "generator")
    return gen.eval()


def touch(model: torch.nn.Module) -> None:
    """Read every parameter once (pages in a memory-mapped file)."""
    for p in model.parameters():
        p.detach().sum()


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__)
    p.add_argument("--runs", type=int, help="timed runs per point, best kept (default 3; 1 quick/tiny)")
    args = p.parse_args(argv)
    setup(args)
    torch.set_grad_enabled(False)
    runs = args.runs or (1 if args.quick or args.tiny else 3)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tok_init, gen_init = write_files(folder, args.tiny)
        sat_pth, aar_pth, native = folder / "SAT.pth", folder / "AAR.pth", folder / "native"
        loaders = {
            "generator": {
                "official .pth": lambda: AARGenerator.from_pretrained(aar_pth, tokenizer=sat_pth),
                "native safetensors": lambda: AARGenerator.from_pretrained(native),
                "native, random init + copy (before)": lambda: load_with_init(native),
            },
            "tokenizer": {
                "official .pth": lambda: SATTokenizer.from_pretrained(sat_pth),
                "native safetensors": lambda: SATTokenizer.from_pretrained(native / "tokenizer"),
            },
        }
        sizes_mb = {"official .pth": round(sum(f.stat().st_size for f in (sat_pth, aar_pth)) / 1e6, 1),
                    "native safetensors": round(sum(f.stat().st_size for f in native.rglob("*")) / 1e6, 1)}
        results = []
        for model, by_format in loaders.items():
            for fmt, load in by_format.items():
                load()  # warm-up: imports, page cache
                results.append({"model": model, "format": fmt, "load_s": round(timed(load, runs), 4),
                                "load_and_touch_s": round(timed(lambda: touch(load()), runs), 4)})  # noqa: B023
    report = {"benchmark": "load", "model": "tiny" if args.tiny else RELEASED, "runs": runs,
              "file_mb": sizes_mb, "results": results,
              "random_init_s": {"tokenizer": round(tok_init, 4), "generator": round(gen_init, 4)},
              "machine": machine(args.tiny)}
    print(f"from_pretrained, warm page cache, best of {runs}; files: {sizes_mb}")
    table(["model", "format", "load s", "load + touch s"],
          [[r["model"], r["format"], r["load_s"], r["load_and_touch_s"]] for r in results])
    print(f"for reference, building with random initialisation: tokenizer {tok_init:.2f} s, "
          f"generator (both) {gen_init:.2f} s")
    return emit(report)


if __name__ == "__main__":
    main()
