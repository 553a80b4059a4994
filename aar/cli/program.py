"""The ``aar`` command: encode, decode, generate, convert, inspect and tokenize from the shell.

Run ``aar --help`` or ``aar COMMAND --help``. An error prints one line, ``aar: error: ...``, on stderr
and exits with status 2 for a usage error (bad or missing arguments) or 1 when the work fails
(missing or unreadable file, wrong model, bad codes file); a warning is one line, ``aar: warning:
...`` (audio clipped by a PCM file, say). Set ``AAR_DEBUG=1`` to get the Python traceback instead.
Progress bars (tqdm, on stderr) appear for encodes and decodes that take more than one forward pass
and for several samples (one bar at a time), when stderr is a terminal (``--progress`` shows them in
a log too); ``--quiet`` turns them off together with the status lines.

Outputs: ``--num-samples N`` (or a codes file holding a batch) writes ``OUT_0.wav``, ``OUT_1.wav``, ...
beside ``OUT.wav``, the index zero-padded to the width of the largest. With ``--seed S``, output ``j``
is drawn with seed ``S + j``, so any one of them can be reproduced alone. ``aar generate`` draws its
outputs ``--batch-size`` at a time, each with its own seed, and writes exactly what one call per
output writes.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from aar.audio import AUDIO_EXTENSIONS, AUDIO_FORMATS, AUDIO_SUBTYPES
from aar.cli import commands
from aar.cli.commands import DEFAULT_MODEL, UsageError
from aar.errors import AARError, pip_command
from aar.tokenizer import DEFAULT_WINDOW_BATCH

EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 1, 2, 130, 141  # 141: as SIGPIPE


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # one line instead of argparse's usage block
        raise UsageError(f"{message} (see '{self.prog} --help')")


class _DefaultsFormatter(argparse.HelpFormatter):
    """Adds ``(default: X)`` to each option's help, unless the help already says its default.

    Options without a value (flags) or whose default is None say what happens instead in their
    own help (``--seed``: random).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or not action.option_strings or action.required:
            return text
        if action.default is None or isinstance(action.default, bool) or action.default == argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


def _number(kind, check, allowed: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not check(value):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "an integer >= 1")
_non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
_finite = _number(float, math.isfinite, "a finite number")
_positive = _number(float, lambda v: math.isfinite(v) and v > 0, "a number > 0")
_top_p = _number(float, lambda v: 0 < v <= 1, "a number in (0, 1]")
_keep_scales = _number(int, lambda v: 0 <= v <= 16, "an integer in [0, 16] (the model has 16 scales)")
_overlap = _number(float, lambda v: 0 <= v < 1, "a number of seconds in [0, 1)")


def _device(text: str):
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a device (cpu, cuda, cuda:1...), got {text!r}") from None
    if device.type == "cuda":  # checked here, not by a driver message after the model has loaded
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA (a CPU build)"
            raise argparse.ArgumentTypeError(
                f"{text!r}: no CUDA GPU is available (torch {torch.__version__} with {build}); "
                "use --device cpu")
        if device.index is not None and device.index >= count:
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {count} CUDA GPU(s), "
                                             f"cuda:0 to cuda:{count - 1}")
    return device


def _audio_out(text: str) -> Path:
    if Path(text).suffix.lower() not in AUDIO_FORMATS:
        raise argparse.ArgumentTypeError(f"{text!r} must end in one of {', '.join(AUDIO_FORMATS)}")
    return Path(text)


def _codes_out(text: str) -> Path:
    if Path(text).suffix.lower() in AUDIO_EXTENSIONS:
        raise argparse.ArgumentTypeError(f"{text!r}: a codes file needs no audio extension; use .codes")
    return Path(text)


#: The longest --seconds a command generates: an hour is 3600 windows (hours of work on a CPU) and
#: 86.4 M samples; longer requests are nearly always a typo, and would fail on memory late.
MAX_SECONDS = 3600.0
_seconds = _number(float, lambda v: math.isfinite(v) and 1 / 24000 <= v <= MAX_SECONDS,
                   f"a number of seconds in [1/24000, {MAX_SECONDS:g}] (one sample to one hour)")


def _subtype_option(p: argparse.ArgumentParser) -> None:
    names = sorted({s for subtypes in AUDIO_SUBTYPES.values() for s in subtypes})
    p.add_argument("--subtype", choices=names, default=None,
                   help="sample encoding of the audio written: FLOAT (32-bit float WAV, the .wav "
                        "default; keeps values outside [-1, 1]), PCM_16 (what most tools expect; the "
                        ".flac default), PCM_24, VORBIS (.ogg). PCM and Vorbis clip to [-1, 1], with "
                        "a warning")


def build_parser() -> argparse.ArgumentParser:
    """The ``aar`` argument parser: global options and one subparser per command."""
    from aar.version import __version__

    def global_options(suppress: bool):  # a fresh parser each time: parents share their actions
        unset = argparse.SUPPRESS
        options = argparse.ArgumentParser(add_help=False)
        options.add_argument("-q", "--quiet", action="store_true", default=unset if suppress else False,
                             help="no progress bars or status lines")
        options.add_argument("--progress", action="store_true", default=unset if suppress else False,
                             help="progress bars even when stderr is not a terminal (default: only on one)")
        options.add_argument("--device", type=_device, default=unset if suppress else None,
                             help="where models run: cpu, cuda, cuda:1... (default: cpu)")
        return options

    # Global options work before or after the command: SUPPRESS keeps a value given before it.
    common = global_options(suppress=True)
    parser = _Parser(prog="aar", parents=[global_options(suppress=False)],
                     epilog="Set AAR_DEBUG=1 to see tracebacks.",
                     description="Scale-level audio tokenizer (SAT) and next-scale generation (AAR).")
    parser.add_argument("--version", action="version", version=f"aar {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    tok_help = "tokenizer: official .pth, native folder (a generator folder works too) or Hub repo id"
    gen_help = "generator: native folder, official AAR .pth or Hub repo id"
    pair_help = ("the paired tokenizer, for an official AAR .pth (default: SAT_d128_lat128.pth beside it, "
                 "or a native folder's own)")
    batch_help = f"windows per forward pass (default: the tokenizer's, {DEFAULT_WINDOW_BATCH})"
    clap_model_help = "CLAP checkpoint or Hub id (default: the backend's release)"

    def generator_options(p: argparse.ArgumentParser, samples: str) -> None:
        """The model and sampling options that ``generate`` and ``vary`` share."""
        p.add_argument("--model", default=DEFAULT_MODEL, help=gen_help)
        p.add_argument("--tokenizer", help=pair_help)
        p.add_argument("--precision", choices=("fp32", "bf16", "int8", "auto"), default="fp32",
                       help="fp32 is the official arithmetic; bf16; int8 (CPU only); auto: the fastest "
                            "that meets aar's accuracy gates on this processor")
        p.add_argument("--cfg", type=_finite, default=4.0,
                       help="guidance strength; negative: anti-guidance")
        p.add_argument("--top-k", type=_non_negative_int, default=200, help="keep the k likeliest; 0: all")
        p.add_argument("--top-p", type=_top_p, default=0.95, help="nucleus mass in (0, 1]; 1: all")
        p.add_argument("--temperature", type=_positive, default=1.0, help="logit temperature")
        p.add_argument("--seed", type=_non_negative_int, default=None,
                       help="output j uses seed SEED + j (default: random, a fresh draw each run)")
        p.add_argument("--num-samples", type=_positive_int, default=1, help=samples)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=getattr(commands, name))
        return p

    p = command("encode", "Audio file (wav, flac, ogg) -> codes file.")
    p.add_argument("input", type=Path, help="audio file")
    p.add_argument("output", type=_codes_out, help="codes file to write (e.g. song.codes)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=tok_help)
    p.add_argument("--batch-size", type=_positive_int, default=None, help=batch_help)

    p = command("decode", "Codes file -> audio file at 24 kHz.")
    p.add_argument("input", type=Path, help="codes file")
    p.add_argument("output", type=_audio_out, help="audio file to write (.wav, .flac or .ogg)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=tok_help)
    p.add_argument("--num-scales", type=_positive_int, default=None,
                   help="decode from the first K scales only, a coarse preview (default: all)")
    p.add_argument("--batch-size", type=_positive_int, default=None, help=batch_help)
    p.add_argument("--allow-mismatch", action="store_true",
                   help="decode codes written by a tokenizer with another fingerprint")
    _subtype_option(p)

    p = command("generate", "Audio (one second, or --seconds S) from a text prompt, reference audio or a "
                            "CLAP vector.")
    cond = p.add_mutually_exclusive_group(required=True)
    cond.add_argument("--prompt", help=f"text prompt (needs the CLAP extra: {pip_command('clap')})")
    cond.add_argument("--audio", type=Path, help="reference audio file, embedded with CLAP")
    cond.add_argument("--clap", type=Path, help="CLAP vector(s) saved with numpy.save: (512,) or (B, 512)")
    p.add_argument("-o", "--output", type=_audio_out, required=True, help="audio file to write")
    generator_options(p, samples="samples per condition")
    p.add_argument("--save-codes", action="store_true", help="also write each sample's codes (OUT.codes)")
    p.add_argument("--batch-size", type=_positive_int, default=4,
                   help="outputs generated together, each with its own seed: faster, and the files are "
                        "the same for any value")
    p.add_argument("--clap-model", default=None, help=f"for --prompt/--audio: {clap_model_help}")
    p.add_argument("--clap-backend", choices=("laion-clap", "transformers"), default="laion-clap",
                   help="CLAP implementation for --prompt/--audio")
    p.add_argument("--seconds", type=_seconds, default=None,
                   help="length in seconds: windows chained by inpainting, docs/generation.md "
                        "(default: one window, 1 s)")
    p.add_argument("--overlap", type=_overlap, default=None,
                   help="with --seconds: seconds each window shares with the previous one, in [0, 1) "
                        "(default: 0.25)")
    _subtype_option(p)

    p = command("vary", "A variation of an audio file: keep its first K scales, resample the rest.")
    p.add_argument("input", type=Path, help="audio file (wav, flac, ogg); every one-second window is varied")
    p.add_argument("-o", "--output", type=_audio_out, required=True, help="audio file to write")
    p.add_argument("--keep-scales", type=_keep_scales, required=True,
                   help="scales kept, 0..16: 0 is a new sound, more keeps more of the input")
    cond = p.add_mutually_exclusive_group()
    cond.add_argument("--prompt", help="text condition (default: the input's own CLAP embedding)")
    cond.add_argument("--clap", type=Path, help="CLAP vector(s) saved with numpy.save: (512,) or (B, 512) "
                                                "(default: the input's own CLAP embedding)")
    generator_options(p, samples="variations per condition")
    p.add_argument("--clap-model", default=None, help=f"without --clap: {clap_model_help}")
    p.add_argument("--clap-backend", choices=("laion-clap", "transformers"), default="laion-clap",
                   help="CLAP implementation, without --clap")
    _subtype_option(p)

    p = command("convert", "Official SAT_*.pth or AAR_*.pth -> native folder.")
    p.add_argument("source", type=Path, help="official checkpoint")
    p.add_argument("output", type=Path, help="folder to write (config.json + model.safetensors)")
    p.add_argument("--tokenizer", help="the paired tokenizer, for an AAR checkpoint (default: "
                                       "SAT_d128_lat128.pth beside it)")
    p.add_argument("--force", action="store_true",
                   help="write into a folder that is not empty, replacing the model in it")

    p = command("info", "Describe a model (config, parameters, fingerprint, token rates) or a codes file.")
    p.add_argument("model", help="official .pth, native folder, Hub repo id, or codes file")
    p.add_argument("--tokenizer", help=pair_help)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("tokenize", "A folder of audio -> Parquet shards of codes (needs aar-audio[data]).")
    p.add_argument("input_dir", type=Path, help="folder of audio files (searched recursively)")
    p.add_argument("output_dir", type=Path, help="folder for the shards")
    p.add_argument("--model", default=DEFAULT_MODEL, help=tok_help)
    workers = p.add_mutually_exclusive_group()
    workers.add_argument("--num-proc", type=_positive_int, default=1, help="worker processes (CPU)")
    workers.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                         help="run on Ray: 'auto' when no ADDRESS is given, 'local' or a cluster "
                              "address (default: no Ray)")

    p = command("demo", f"Serve a page to try the model in a browser (needs {pip_command('demo')}).")
    p.add_argument("--model", default=DEFAULT_MODEL, help=gen_help)
    p.add_argument("--tokenizer", help=pair_help)
    p.add_argument("--precision", choices=("fp32", "bf16", "int8", "auto"), default="auto",
                   help="fp32 is the official arithmetic; auto: the fastest that meets aar's accuracy gates")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 127.0.0.1 keeps the page on this machine")
    p.add_argument("--port", type=_number(int, lambda v: 1 <= v <= 65535, "a port in [1, 65535]"),
                   default=7860, help="TCP port")
    p.add_argument("--max-upload-mb", type=_positive, default=20.0, help="largest upload, in MB")
    p.add_argument("--max-clip-seconds", type=_positive, default=30.0, help="longest clip accepted")
    p.add_argument("--max-seconds", type=_positive, default=10.0,
                   help="longest generation or continuation a request may ask for")
    p.add_argument("--max-samples", type=_positive_int, default=4, help="most samples per request")
    p.add_argument("--clap-model", default=None, help=f"for text and clip conditions: {clap_model_help}")
    p.add_argument("--clap-backend", choices=("laion-clap", "transformers"), default="laion-clap",
                   help="CLAP implementation for text and clip conditions, loaded on first use")

    from aar.cli.eval_parser import add_eval_parser

    add_eval_parser(sub, common, dict(positive_int=_positive_int, non_negative_int=_non_negative_int,
                                      finite=_finite, positive=_positive, top_p=_top_p))
    return parser


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):  # no real file descriptor
        pass


def describe_error(err: BaseException) -> str:
    """One readable line for an exception (no traceback)."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        return f"{err.strerror}: {err.filename}"
    text = " ".join(str(err).split())
    if isinstance(err, (AARError, ValueError, TypeError, OSError, ImportError, UsageError, commands.Failure)):
        return text or type(err).__name__
    return f"{type(err).__name__}: {text} (set AAR_DEBUG=1 for the traceback)"


def run_script(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> int:
    """Run a script's ``main(argv)`` as ``aar`` runs a command, for ``sys.exit(run_script(main))``.

    An error is one line, ``SCRIPT: error: ...``, on stderr, and the status 1 (``AAR_DEBUG=1`` lets
    the traceback through); argparse's own usage errors keep their status 2. ``main`` returning an
    int sets the status, None is 0.

    Example:
        >>> run_script(lambda argv: int("twelve"))  # prints "...: error: invalid literal ..."
        1
    """
    status = _guarded(Path(sys.argv[0]).name or "script", lambda: main(argv))
    return int(status) if isinstance(status, int) else 0


def _guarded(prog: str, call: Callable[[], object]) -> object:
    """``call()``, with an interrupt or an error turned into one line on stderr and its exit status."""
    try:
        return call()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if os.environ.get("AAR_DEBUG", "") not in ("", "0"):
            raise
        print(f"{prog}: error: {describe_error(err)}", file=sys.stderr)
        return EXIT_FAILURE


def main(argv: list[str] | None = None) -> int:
    """Run the ``aar`` command line.

    Args:
        argv: The arguments after the program name; None reads ``sys.argv``.

    Returns:
        The exit status: 0 success, 1 failure, 2 usage error, 130 interrupted, 141 when stdout's
        reader closed the pipe (``aar info | head``). Warnings are one line, ``aar: warning: ...``.
    """
    with warnings.catch_warnings():  # restores showwarning on the way out
        warnings.showwarning = _one_line_warning
        return _run(argv)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"aar: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _run(argv: list[str] | None) -> int:
    def call() -> int:
        try:
            args = build_parser().parse_args(argv)
            return args.func(args)
        except BrokenPipeError:  # `aar info | head`: the reader left; say nothing more
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        except UsageError as err:
            print(f"aar: error: {describe_error(err)}", file=sys.stderr)
            return EXIT_USAGE

    return _guarded("aar", call)
