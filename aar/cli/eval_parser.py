"""The ``aar eval`` argument parser: ``reconstruct``, ``generate`` and ``compare`` sub-commands."""

from __future__ import annotations

import argparse
from pathlib import Path


def _lazy(name: str):
    def run(args):
        from aar.cli import eval_commands as command

        return getattr(command, name)(args)

    run.__name__ = name
    return run


def add_eval_parser(sub, common: argparse.ArgumentParser, types: dict) -> None:
    """Add ``aar eval ...`` to the ``aar`` sub-command set ``sub``.

    Args:
        sub: The ``aar`` sub-parsers.
        common: The global options every command accepts.
        types: The argument checkers of ``aar.cli``: positive_int, non_negative_int, finite, positive,
            top_p.
    """
    from aar.cli.commands import DEFAULT_MODEL
    from aar.metrics.protocols import DEFAULT_PROTOCOL, PROTOCOLS

    t = argparse.Namespace(**types)

    def command(group, name: str, help: str) -> argparse.ArgumentParser:
        p = group.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=_lazy(name))
        return p

    def scoring_options(p: argparse.ArgumentParser, needed: bool) -> None:
        p.add_argument("--extractor", required=needed, metavar="SPEC",
                       help="embeddings for FAD: vggish:PATH, panns:PATH or clap[:PATH_OR_ID]")
        if needed:  # the sets of files; reconstruct embeds its windows in memory
            cache = p.add_mutually_exclusive_group()
            cache.add_argument("--cache", type=Path, default=None, metavar="DIR",
                               help="embedding cache folder (default $XDG_CACHE_HOME/aar/embeddings)")
            cache.add_argument("--no-cache", action="store_true", help="embed every file afresh")
        p.add_argument("--clap-backend", choices=("laion-clap", "transformers"), default="laion-clap",
                       help="CLAP implementation for clap specs (default laion-clap)")
        p.add_argument("--json", type=Path, default=None, help="write the report here (JSON)")
        p.add_argument("--protocol", choices=tuple(PROTOCOLS), default=DEFAULT_PROTOCOL,
                       help="which reference tool each number reproduces (default paper; "
                            "docs/evaluation.md lists them)")

    def ray_option(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                       help=f"{what} on Ray: 'auto' (the default), 'local' or a cluster address; "
                            "workers must reach the files and the cache folder")

    top = sub.add_parser("eval", help="Score a tokenizer, a generator or two folders of audio "
                                      "(docs/evaluation.md).",
                         description="Score a tokenizer's reconstructions, a generator's samples "
                                     "across guidance values, or two folders of audio.")
    group = top.add_subparsers(dest="eval_command", metavar="WHAT", required=True)

    p = command(group, "reconstruct", "Encode and decode every file of a folder; mel, STFT and SI-SDR "
                                      "per one-second window, per file and overall.")
    p.add_argument("input_dir", type=Path, help="folder of audio files (searched recursively)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="tokenizer (as for aar encode)")
    p.add_argument("--batch-size", type=t.positive_int, default=None, help="windows per forward pass")
    ray_option(p, "reconstruct, score and embed")
    scoring_options(p, needed=False)

    p = command(group, "generate", "Generate an evaluation set per --cfg and score FAD, ISc and KL "
                                   "against reference audio; writes JSON and a PNG plot.")
    p.add_argument("--model", default=DEFAULT_MODEL, help="generator (as for aar generate)")
    p.add_argument("--tokenizer", help="the paired tokenizer, for an official AAR .pth")
    p.add_argument("--reference", type=Path, required=True, help="folder of reference audio for FAD")
    cond = p.add_mutually_exclusive_group(required=True)
    cond.add_argument("--prompts", type=Path, help="text file, one prompt per line")
    cond.add_argument("--clap-from", type=Path, metavar="DIR",
                      help="folder of audio: each clip's CLAP embedding is a condition, and KL pairs "
                           "the samples with it")
    cond.add_argument("--clap-vectors", type=Path, metavar="PATH",
                      help="precomputed CLAP vectors, no CLAP model needed: one .npy/.pt matrix (N, D) "
                           "or a folder of one .npy/.pt vector per condition (sorted by name)")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder for the generated audio")
    p.add_argument("--cfg", type=t.finite, nargs="+", default=[4.0],
                   help="one or more guidance values (default 4); several give the sweep")
    p.add_argument("--num-samples", type=t.positive_int, default=1, help="samples per condition")
    p.add_argument("--seed", type=t.non_negative_int, default=0,
                   help="sample j of condition i uses SEED + i * num_samples + j (default 0)")
    p.add_argument("--top-k", type=t.non_negative_int, default=200, help="keep the k likeliest; 0: all")
    p.add_argument("--top-p", type=t.top_p, default=0.95, help="nucleus mass in (0, 1] (default 0.95)")
    p.add_argument("--temperature", type=t.positive, default=1.0, help="logit temperature (default 1)")
    p.add_argument("--classifier", metavar="SPEC", help="panns:PATH, for ISc and KL")
    p.add_argument("--clap-model", default=None, help="CLAP checkpoint or Hub id for the conditions")
    p.add_argument("--plot", type=Path, default=None, help="the PNG (default OUTPUT/guidance.png)")
    p.add_argument("--precision", choices=("fp32", "bf16", "int8", "auto"), default="fp32",
                   help="the generator's precision (as for aar generate; default fp32)")
    p.add_argument("--batch-size", type=t.positive_int, default=4,
                   help="samples generated together, each with its own seed: faster, and the audio is "
                        "the same for any value (default 4)")
    ray_option(p, "generate and embed")
    scoring_options(p, needed=True)

    p = command(group, "compare", "FAD (and KL over files paired by name) between two folders of audio.")
    p.add_argument("a_dir", type=Path, help="first folder (the reference side of KL)")
    p.add_argument("b_dir", type=Path, help="second folder")
    p.add_argument("--classifier", metavar="SPEC", help="panns:PATH, for KL")
    ray_option(p, "embed")
    scoring_options(p, needed=True)
