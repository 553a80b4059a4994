"""What each ``aar`` subcommand does, given its parsed arguments (see :mod:`aar.cli`).

Each command function takes the ``argparse.Namespace`` and returns the exit status. Heavy modules
are imported inside the functions, so ``aar --help`` and usage errors stay quick.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aar.cli.reports import codes_file_report, model_report, print_report

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL = "qiuk6/AAR"
_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")


class UsageError(Exception):
    """A bad command line, found while parsing or after it (exit status 2)."""


class Failure(Exception):
    """The work finished only in part; the message says what failed (exit status 1)."""


# ----------------------------------------------------------------------------------------- helpers
def _say(args, message: str) -> None:
    if not args.quiet:
        print(message)


def show_progress(args) -> bool:
    """Progress bars: off with --quiet, and when stderr is no terminal (a log) unless --progress asks."""
    if args.quiet:
        return False
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()


def _need_file(path: Path, what: str, folder_hint: str = "") -> None:
    if path.is_dir():
        raise UsageError(f"{path} is a folder; expected a{'n' if what[0] in 'aeiou' else ''} {what}"
                         + (f" ({folder_hint})" if folder_hint else ""))
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")


def _check_subtype(args) -> None:
    """Refuse an output extension and ``--subtype`` that do not go together, before any loading."""
    from aar.audio import AUDIO_FORMATS, AUDIO_SUBTYPES

    fmt = AUDIO_FORMATS[args.output.suffix.lower()]
    if args.subtype is not None and args.subtype not in AUDIO_SUBTYPES[fmt]:
        raise UsageError(f"--subtype {args.subtype} does not fit {args.output.name}: {fmt} takes "
                         f"{', '.join(AUDIO_SUBTYPES[fmt])}")


def _write(args, path: Path, wav, rate: int) -> None:
    from aar.audio import write_audio

    write_audio(path, wav, rate, subtype=args.subtype)


def numbered_paths(output: Path, count: int) -> list[Path]:
    """``[output]`` for one file, else ``OUT_0.wav``, ``OUT_1.wav``... (zero-padded) beside it."""
    if count == 1:
        return [output]
    width = len(str(count - 1))
    return [output.with_name(f"{output.stem}_{j:0{width}d}{output.suffix}") for j in range(count)]


def _is_long(args, tok, windows: int) -> bool:
    """Show progress for work that takes more than one forward pass."""
    return show_progress(args) and windows > (args.batch_size or tok.window_batch_size)


def _load_tokenizer(args):
    from aar.tokenizer import SATTokenizer

    return SATTokenizer.from_pretrained(args.model, device=args.device)


def _pass_tokenizer(args) -> UsageError:
    """The usage error for an official generator checkpoint given without ``--tokenizer``."""
    return UsageError(f"{args.model} is an official generator checkpoint without its tokenizer beside it: "
                      "pass --tokenizer (its SAT)")


def _load_generator(args):
    from aar.errors import MissingTokenizerError
    from aar.generator import AARGenerator

    try:
        gen = AARGenerator.from_pretrained(args.model, tokenizer=args.tokenizer, device=args.device,
                                           precision=args.precision)
    except MissingTokenizerError:
        raise _pass_tokenizer(args) from None
    if getattr(args, "precision", None) == "auto":
        _say(args, f"precision: {gen.precision} (chosen by --precision auto for {gen.device.type})")
    return gen


def _require_clap(args, needed: bool) -> None:
    """Fail at once, before any model is looked up, when CLAP is needed and its extra is missing."""
    if needed:
        from aar.conditioning.clap import ClapEncoder

        ClapEncoder.check_installed(args.clap_backend)


def read_clap_file(path: Path):
    """A (D,) or (B, D) float32 tensor from a ``numpy.save`` file (no pickles)."""
    import numpy as np
    import torch

    _need_file(path, "CLAP embedding file")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception:
        raise ValueError(f"cannot read CLAP embedding {path}: expected a numpy.save array") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
        raise ValueError(f"CLAP embedding {path} must hold floats, got {getattr(array, 'dtype', array)}")
    return torch.from_numpy(array.astype(np.float32))


def _read_clip(path) -> tuple[torch.Tensor, int]:
    """An audio file as one clip (1, C, T) and its rate: the layout every audio argument takes, any C."""
    from aar.audio import load_audio

    wav_CT, rate = load_audio(path)
    return wav_CT[None], rate


# ---------------------------------------------------------------------------------------- commands
def encode(args) -> int:
    """``aar encode IN OUT.codes``."""
    from aar.audio import resampled_length
    from aar.loading.codes_file import save_codes

    _need_file(args.input, "audio file")
    wav, sr = _read_clip(args.input)
    tok = _load_tokenizer(args)
    windows = -(-resampled_length(wav.shape[-1], sr, tok.sample_rate) // tok.config.window)
    codes = tok.encode(wav, sr, batch_size=args.batch_size, progress=_is_long(args, tok, windows))
    save_codes(args.output, codes, tok, model=str(args.model))
    _say(args, f"wrote {args.output}: {codes.num_windows} window(s) of {sum(codes.scales)} tokens, "
               f"{codes.length / tok.sample_rate:.2f} s")
    return 0


def decode(args) -> int:
    """``aar decode IN.codes OUT.wav``."""
    from aar.loading.codes_file import load_codes, read_codes_header

    _check_subtype(args)
    header = read_codes_header(args.input)  # a bad file fails before the model loads
    tok = _load_tokenizer(args)
    S = tok.config.num_scales
    if args.num_scales is not None and args.num_scales > S:
        raise UsageError(f"--num-scales must lie in [1, {S}] for this model, got {args.num_scales}")
    codes = load_codes(header.path, tok, check=not args.allow_mismatch)
    progress = _is_long(args, tok, codes.batch_size * codes.num_windows)
    wav_B1T = tok.decode(codes, num_scales=args.num_scales, batch_size=args.batch_size, progress=progress)
    paths = numbered_paths(args.output, codes.batch_size)
    for path, wav_1T in zip(paths, wav_B1T):
        _write(args, path, wav_1T, tok.sample_rate)
    _say(args, f"wrote {', '.join(map(str, paths))}: {codes.length / tok.sample_rate:.2f} s at 24 kHz")
    return 0


def generate(args) -> int:
    """``aar generate (--prompt | --audio | --clap) -o OUT.wav``."""
    from aar.loading.codes_file import save_codes

    _check_subtype(args)
    if args.seconds is None and args.overlap is not None:
        raise UsageError("--overlap needs --seconds")
    if args.seconds is not None and args.save_codes:
        raise UsageError("--save-codes writes one window; it does not combine with --seconds")
    clap = read_clap_file(args.clap) if args.clap is not None else None  # inputs fail before loading
    audio = _read_clip(args.audio) if args.audio is not None else None
    _require_clap(args, needed=clap is None)
    gen = _load_generator(args)
    clap_BD = _condition(args, gen, clap, audio)
    paths, plan = _sample_plan(args, clap_BD, "generate", args.batch_size)
    for group, clap_nD, knobs in plan:  # each output as a call with it alone would draw it
        if args.seconds is None:
            codes = gen.generate_codes(clap_nD, **knobs)
            wav_n1T = gen.tokenizer.decode(codes, batch_size=1)  # one window per pass, as alone
        else:
            wav_n1T = gen.generate(clap_nD, seconds=args.seconds, overlap=args.overlap,
                                   progress=show_progress(args) and len(paths) == 1, **knobs)
        for b, path in enumerate(group):
            _write(args, path, wav_n1T[b], gen.sample_rate)
            if args.save_codes:
                save_codes(path.with_suffix(".codes"), codes.item(b), gen.tokenizer, model=str(args.model),
                           precision=gen.precision)
    _say(args, f"wrote {', '.join(map(str, paths))}")
    return 0


def _sample_plan(args, clap_BD: torch.Tensor, desc: str, batch_size: int = 1):
    """The outputs of ``generate`` and ``vary``, and an iterator (with a progress bar) over batches of up
    to ``batch_size`` of them: ``(paths, conditions (n, D), sampling keywords)``. ``--num-samples`` per
    condition; output j is seeded ``--seed + j`` (``seed``: a list, or None without --seed)."""
    from tqdm.auto import tqdm

    paths = numbered_paths(args.output, clap_BD.shape[0] * args.num_samples)
    knobs = dict(cfg=args.cfg, top_k=args.top_k, top_p=args.top_p, temperature=args.temperature)

    def plan():
        with tqdm(total=len(paths), desc=desc, unit="sample",
                  disable=not show_progress(args) or len(paths) == 1) as bar:
            for start in range(0, len(paths), batch_size):
                js = range(start, min(start + batch_size, len(paths)))
                seeds = None if args.seed is None else [args.seed + j for j in js]
                rows = clap_BD[[j // args.num_samples for j in js]]
                yield [paths[j] for j in js], rows, dict(knobs, seed=seeds)
                bar.update(len(js))

    return paths, plan()


def _condition(args, gen, clap, audio) -> torch.Tensor:
    """The (B, D) condition: the ``--clap`` vectors, else ``--prompt`` or ``audio`` through CLAP."""
    if clap is not None:
        return gen.clap_vectors(clap)
    from aar.conditioning.clap import ClapEncoder

    gen.clap_encoder = ClapEncoder.from_pretrained(args.clap_model, backend=args.clap_backend,
                                                   device=gen.device)
    if args.prompt is not None:
        return gen.clap_vectors(prompt=args.prompt)
    return gen.clap_vectors(audio=audio[0], sample_rate=audio[1])


def vary(args) -> int:
    """``aar vary IN.wav -o OUT.wav --keep-scales K``."""
    _check_subtype(args)
    _need_file(args.input, "audio file")
    clap = read_clap_file(args.clap) if args.clap is not None else None  # inputs fail before loading
    wav, rate = _read_clip(args.input)
    _require_clap(args, needed=clap is None)
    gen = _load_generator(args)
    S = gen.config.num_scales
    if args.keep_scales > S:
        raise UsageError(f"--keep-scales must lie in [0, {S}] for this model, got {args.keep_scales}")
    clap_BD = _condition(args, gen, clap, (wav, rate))
    paths, plan = _sample_plan(args, clap_BD, "vary")
    for (path,), clap_1D, knobs in plan:
        knobs["seed"] = knobs["seed"] and knobs["seed"][0]  # one output per call: its seed, or None
        out = gen.vary(wav, rate, keep_scales=args.keep_scales, clap_emb=clap_1D,
                       progress=show_progress(args) and len(paths) == 1, **knobs)  # one bar at a time
        _write(args, path, out[0], gen.sample_rate)
    _say(args, f"wrote {', '.join(map(str, paths))}: {out.shape[-1] / gen.sample_rate:.2f} s, "
               f"first {args.keep_scales} of {S} scales kept")
    return 0


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, *, tokenizer=None,
                       force: bool = False) -> Path:
    """Convert an official ``SAT_*.pth`` or ``AAR_*.pth`` into a native folder.

    This is ``from_pretrained(src).save_pretrained(dst)`` for whichever model ``src`` holds, into a
    new or empty folder; ``force=True`` replaces a model already there (its ``config.json``,
    ``model.safetensors`` and ``tokenizer/``, nothing else) instead of refusing.

    Args:
        src: The official checkpoint. Its kind is read from its layout, not its name.
        dst: Output folder (``config.json`` + ``model.safetensors``; a generator adds ``tokenizer/``).
        tokenizer: For an AAR file, the paired tokenizer: a ``SATTokenizer`` or anything
            ``SATTokenizer.from_pretrained`` accepts.
        force: Write into a folder that is not empty, replacing the model files in it.

    Returns:
        The output folder.

    Raises:
        FileExistsError: ``dst`` is a file, or a folder that is not empty and ``force`` is False
            (checked before ``src`` is read).
        WrongModelKindError: ``src`` is no official tokenizer or generator checkpoint.
        MissingTokenizerError: an AAR file without ``tokenizer``.
    """
    from aar.errors import MissingTokenizerError
    from aar.generator import AARGenerator
    from aar.loading import hub
    from aar.loading.official import read_checkpoint
    from aar.tokenizer import SATTokenizer

    dst = Path(dst)
    if dst.exists() and not dst.is_dir():
        raise FileExistsError(f"cannot convert into {dst}: it is a file; name a folder")
    held = sorted(p.name for p in dst.iterdir()) if dst.is_dir() else []
    if held and not force:
        shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
        raise FileExistsError(f"{dst} is not empty (it holds {shown}): pass --force (force=True) to "
                              "replace the model in it, or name a new folder")
    kind, _ = read_checkpoint(src)
    if kind == "sat":
        model = SATTokenizer.from_pretrained(src)
    elif tokenizer is None:
        raise MissingTokenizerError(src)
    else:
        model = AARGenerator.from_pretrained(src, tokenizer=tokenizer)
    if held:  # the old model's files go first, so none of them outlives the new one (a stale tokenizer/)
        import shutil

        (dst / hub.CONFIG_NAME).unlink(missing_ok=True)
        (dst / hub.WEIGHTS_NAME).unlink(missing_ok=True)
        if (dst / hub.TOKENIZER_SUBFOLDER).is_dir():
            shutil.rmtree(dst / hub.TOKENIZER_SUBFOLDER)
    model.save_pretrained(dst)
    return dst


def convert(args) -> int:
    """``aar convert SRC.pth DIR``."""
    from aar.errors import MissingTokenizerError
    from aar.loading import hub

    _need_file(args.source, "official checkpoint",
               "aar convert reads an official SAT_*.pth or AAR_*.pth file; a folder written by aar "
               "convert or save_pretrained is already native and loads as it is")
    tokenizer = args.tokenizer
    if tokenizer is None:  # the official layout keeps the pair side by side
        sibling = args.source.parent / hub.OFFICIAL_REPOS[DEFAULT_MODEL]["sat"]
        tokenizer = sibling if sibling.is_file() and sibling != args.source else None
    try:
        out = convert_checkpoint(args.source, args.output, tokenizer=tokenizer, force=args.force)
    except MissingTokenizerError:
        raise UsageError(f"{args.source} is a generator checkpoint: pass --tokenizer (its SAT)") from None
    _say(args, f"wrote {out}")
    return 0


def info(args) -> int:
    """``aar info MODEL_OR_CODES_FILE``."""
    path = Path(args.model).expanduser()
    checkpoint = path.suffix in _CHECKPOINT_SUFFIXES or path.name in ("config.json", "model.safetensors")
    if path.is_file() and not checkpoint:
        report = codes_file_report(path)
    else:
        from aar.errors import MissingTokenizerError

        try:
            report = model_report(args.model, args.tokenizer, args.device)
        except MissingTokenizerError:
            raise _pass_tokenizer(args) from None
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


def tokenize(args) -> int:
    """``aar tokenize IN_DIR OUT_DIR``."""
    from aar.data import tokenize_folder

    if not args.input_dir.is_dir():
        raise FileNotFoundError(f"input folder not found: {args.input_dir}")
    summary = tokenize_folder(args.input_dir, args.output_dir, args.model, num_proc=args.num_proc,
                              ray_address=args.ray, progress=show_progress(args))
    _say(args, f"{summary.rows} file(s) in {summary.shards} shard(s) under {summary.output_dir} "
               f"({summary.skipped_shards} shard(s) done before); manifest: {summary.manifest}")
    if summary.errors:
        errors = Path(summary.output_dir) / "errors.jsonl"
        raise Failure(f"{summary.errors} file(s) could not be tokenized; reasons in {errors}")
    return 0


def demo(args) -> int:
    """``aar demo --model M``: serve the page until interrupted."""
    from aar.errors import require_extra

    require_extra("gradio", "demo", "aar demo", load=False)
    from aar.demo import DemoEngine, DemoSettings, launch

    settings = DemoSettings(host=args.host, port=args.port, max_upload_mb=args.max_upload_mb,
                            max_clip_seconds=args.max_clip_seconds, max_seconds=args.max_seconds,
                            max_samples=args.max_samples)
    engine = DemoEngine(_load_generator(args), str(args.model), settings, clap_model=args.clap_model,
                        clap_backend=args.clap_backend)
    _say(args, f"aar demo: http://{settings.host}:{settings.port} ({engine.describe()}); Ctrl+C stops")
    import signal

    def stop(signum, frame):  # SIGTERM stops the server as Ctrl+C does, so its temp folder is removed
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    launch(engine)
    return 0
