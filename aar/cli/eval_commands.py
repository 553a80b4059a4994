"""The bodies of ``aar eval reconstruct | generate | compare`` (the parser is :mod:`aar.cli.eval_parser`).

Model specs for ``--extractor`` and ``--classifier``: ``vggish:PATH`` (VGGish, as the original FAD),
``panns:PATH`` (PANNs CNN14, as AudioLDM's evaluation), ``clap`` or ``clap:PATH_OR_ID`` (CLAP audio
embeddings). Exit status: 0 when at least one file was scored (files that failed are listed in the
JSON ``errors`` and counted on stderr), 1 when none could be.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from pathlib import Path

from aar.cli.commands import show_progress
from aar.errors import MissingExtraError
from aar.evaluation.sets import list_audio, not_audio
from aar.loading.files import atomic_path

SPEC_KINDS = ("vggish", "panns", "clap")


def default_cache_dir() -> Path:
    """Where embeddings are cached unless ``--cache`` says otherwise: ``$XDG_CACHE_HOME/aar/embeddings``."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return root / "aar" / "embeddings"


def _split(spec: str, what: str) -> tuple[str, str | None]:
    from aar.cli.commands import UsageError

    kind, _, where = spec.partition(":")
    if kind not in SPEC_KINDS:
        raise UsageError(f"{what} must be one of vggish:PATH, panns:PATH, clap[:PATH], got {spec!r}")
    if kind != "clap" and not where:
        raise UsageError(f"{what} {spec!r} needs a checkpoint: {kind}:PATH_OR_REPO")
    return kind, where or None


def _network(kind: str, where: str, args):
    """VGGish or PANNs CNN14 weights from a path or Hub id; a missing file is a usage error whose message
    says where the published weights are."""
    from aar import metrics
    from aar.cli.commands import UsageError

    network = metrics.VGGish if kind == "vggish" else metrics.PANNsCNN14
    try:
        return network.from_pretrained(where, device=args.device)
    except FileNotFoundError as err:
        raise UsageError(f"{kind}:{where}: {err}; download once, then pass the file's path") from None


def load_extractor(spec: str, args):
    """An embedding extractor from a spec (see the module docstring)."""
    from aar import metrics

    kind, where = _split(spec, "--extractor")
    if kind == "clap":
        from aar.conditioning.clap import ClapEncoder

        return metrics.ClapExtractor(ClapEncoder.from_pretrained(where, backend=args.clap_backend,
                                                                 device=args.device))
    return _network(kind, where, args)


def load_classifier(spec: str, args):
    """An audio classifier from a spec: only ``panns:PATH`` classifies."""
    from aar.cli.commands import UsageError

    kind, where = _split(spec, "--classifier")
    if kind != "panns":
        raise UsageError(f"--classifier must be panns:PATH (a classifier with class outputs), got {spec!r}")
    return _network(kind, where, args)


@contextlib.contextmanager
def _engines(args, model=None, tokenizer=None):
    """``(runner, embedder)`` for ``--ray`` (one Ray session for the whole command), else ``(None, None)``."""
    if args.ray is None:
        yield None, None
        return
    from aar.data.runners import ray_session
    from aar.evaluation.distributed import ray_embedder, ray_runner

    with ray_session(args.ray):
        runner = None
        if model is not None:
            runner = ray_runner(model, tokenizer, args.ray, device=args.device, precision=args.precision,
                                batch_size=args.batch_size)
        yield runner, ray_embedder(args.ray)


def _cache(args):
    if args.no_cache:
        return None
    from aar.metrics import EmbeddingCache

    return EmbeddingCache(args.cache or default_cache_dir())


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) and math.isfinite(value) else str(value)


def print_table(header: list[str], rows: list[list]) -> None:
    """A plain text table on stdout, columns right-aligned after the first."""
    cells = [header] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


def _report_errors(errors, quiet: bool, left_out=()) -> None:
    if errors:
        print(f"aar: {len(errors)} file(s) skipped; reasons in the JSON 'errors'"
              + ("" if quiet else ": " + "; ".join(f"{e.path}: {e.error}" for e in errors[:3])),
              file=sys.stderr)
    if left_out:
        print(f"aar: {len(left_out)} file(s) left out, not audio by extension (JSON 'not_audio'): "
              + ", ".join(str(p) for p in left_out[:3]) + (" ..." if len(left_out) > 3 else ""),
              file=sys.stderr)


def _protocol_line(protocol: dict) -> str:
    return f"protocol {protocol['name']}: {protocol['summary']}"


def _json(report, left_out) -> dict:
    data = report.to_dict()
    data["not_audio"] = [str(p) for p in left_out]
    return data


def reconstruct(args) -> int:
    """``aar eval reconstruct IN_DIR --model M``."""
    from aar.evaluation.round_trip import METRICS, evaluate_reconstruction
    from aar.tokenizer import SATTokenizer

    files = list_audio(args.input_dir)  # a bad folder fails before the model loads
    left_out = not_audio(args.input_dir)
    extractor = load_extractor(args.extractor, args) if args.extractor else None
    tok = SATTokenizer.from_pretrained(args.model, device=args.device)
    runner, session = None, contextlib.nullcontext()
    if args.ray is not None:
        from aar.data.runners import ray_session
        from aar.evaluation.distributed import ray_reconstructor

        runner, session = ray_reconstructor(args.model, args.ray), ray_session(args.ray)
    with session:
        report = evaluate_reconstruction(tok, files, extractor=extractor, batch_size=args.batch_size,
                                         model=args.model, runner=runner, progress=show_progress(args),
                                         protocol=args.protocol)
    rows = [[_relative(f.path, args.input_dir), f.seconds, f.windows] + [getattr(f, m) for m in METRICS]
            for f in report.files]
    rows.append(["all", sum(f.seconds for f in report.files), report.windows]
                + [getattr(report, m) for m in METRICS])
    print_table(["file", "seconds", "windows", *METRICS], rows)
    if report.fad is not None:
        print(f"FAD ({report.extractor}, originals vs reconstructions): {_fmt(report.fad)}")
        if report.fad_warning:
            print(f"aar: {report.fad_warning}", file=sys.stderr)
    elif report.fad_unavailable:
        print(f"FAD: unavailable ({report.fad_unavailable})")
    return _finish(report, args, left_out)


def _finish(report, args, left_out: list) -> int:
    """The end every report shares: its protocol line, the JSON file if asked for, the files left
    out or in error."""
    print(_protocol_line(report.protocol))
    if args.json:
        write_json(args.json, _json(report, left_out))
    _report_errors(report.errors, args.quiet, left_out)
    return 0


def compare(args) -> int:
    """``aar eval compare A_DIR B_DIR --extractor SPEC``."""
    from aar.evaluation.compare import compare_sets

    list_audio(args.a_dir), list_audio(args.b_dir)
    left_out = not_audio(args.a_dir) + not_audio(args.b_dir)
    extractor = load_extractor(args.extractor, args)
    classifier = load_classifier(args.classifier, args) if args.classifier else None
    with _engines(args) as (_, embedder):
        report = compare_sets(args.a_dir, args.b_dir, extractor, classifier=classifier, cache=_cache(args),
                              embedder=embedder, progress=show_progress(args), protocol=args.protocol)
    print(f"FAD ({report.extractor}): {_fmt(report.fad)}  [{report.files_a} vs {report.files_b} file(s)]")
    if report.fad_warning:
        print(f"aar: {report.fad_warning}", file=sys.stderr)
    if report.kl is not None:
        print(f"KL (softmax): {_fmt(report.kl)}  KL (sigmoid): {_fmt(report.kl_sigmoid)}  "
              f"over {report.kl_pairs} pair(s)")
    else:
        print(f"KL: unavailable ({report.kl_unavailable})")
    return _finish(report, args, left_out)


def read_prompts(path: Path) -> list[str]:
    """Prompts of a text file: one per line; blank lines and lines starting with ``#`` are skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"prompts file not found: {path}")
    prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise ValueError(f"prompts file {path} holds no prompt (one per line)")
    return prompts


def read_clap_vectors(path: Path):
    """Precomputed CLAP vectors: one ``.npy``/``.pt`` matrix (N, D) or vector (D,), or a folder of one
    vector per condition, in sorted file-name order. ``.pt`` files are read with ``weights_only=True``.

    Raises:
        FileNotFoundError: no such file or folder.
        ValueError: no vector files in the folder, a file that is not a 1-D/2-D float array, or vectors
            of different sizes.
    """
    import numpy as np
    import torch

    def one(file: Path) -> torch.Tensor:
        if file.suffix == ".npy":
            value = torch.from_numpy(np.load(file, allow_pickle=False))
        elif file.suffix == ".pt":
            value = torch.load(file, map_location="cpu", weights_only=True)
        else:
            raise ValueError(f"CLAP vectors must be .npy or .pt files, got {file}")
        if not isinstance(value, torch.Tensor) or value.ndim not in (1, 2) or not value.is_floating_point():
            raise ValueError(f"{file} must hold a float vector (D,) or matrix (N, D)")
        return value.float().reshape(-1, value.shape[-1])

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".npy", ".pt") and p.is_file())
        if not files:
            raise ValueError(f"no .npy or .pt CLAP vectors in {path}")
        rows = [one(f) for f in files]
        if len({r.shape[-1] for r in rows}) > 1:
            sizes = sorted({r.shape[-1] for r in rows})
            raise ValueError(f"the CLAP vectors in {path} differ in size: {sizes}")
        return torch.cat(rows)
    if not path.is_file():
        raise FileNotFoundError(f"CLAP vectors not found: {path}")
    return one(path)


def generate(args) -> int:
    """``aar eval generate --model M --reference REF_DIR (--prompts F | --clap-from DIR | --clap-vectors P)
    -o OUT_DIR``."""
    from aar.audio import load_audio
    from aar.cli.commands import _load_generator
    from aar.evaluation.guidance_sweep import evaluate_generation

    prompts = read_prompts(args.prompts) if args.prompts is not None else None
    sources = list_audio(args.clap_from) if args.clap_from is not None else None
    vectors = read_clap_vectors(args.clap_vectors) if args.clap_vectors is not None else None
    list_audio(args.reference)
    extractor = load_extractor(args.extractor, args)
    classifier = load_classifier(args.classifier, args) if args.classifier else None
    gen = _load_generator(args)
    if vectors is not None:
        clap_ND = vectors
    else:
        from aar.conditioning.clap import ClapEncoder

        gen.clap_encoder = ClapEncoder.from_pretrained(args.clap_model, backend=args.clap_backend,
                                                       device=gen.device)
        if prompts is not None:
            clap_ND = gen.clap_vectors(prompt=prompts)
        else:
            import torch

            clap_ND = torch.cat([gen.clap_vectors(audio=w, sample_rate=r)
                                 for w, r in map(load_audio, sources)])
    with _engines(args, args.model, args.tokenizer) as (runner, embedder):
        report = evaluate_generation(
            gen, clap_ND, args.reference, args.output, extractor, cfgs=args.cfg,
            num_samples=args.num_samples, seed=args.seed, classifier=classifier, condition_audio=sources,
            cache=_cache(args), top_k=args.top_k, top_p=args.top_p, temperature=args.temperature,
            runner=runner, embedder=embedder, progress=show_progress(args), protocol=args.protocol,
            batch_size=args.batch_size,
        )
    print_table(["cfg", "clips", "FAD", "ISc", "ISc_std", "KL", "KL_sigmoid"],
                [[f"{p.cfg:g}", p.samples, p.fad, p.inception_score, p.inception_score_std, p.kl,
                  p.kl_sigmoid] for p in report.points])
    print(_protocol_line(report.protocol))
    for p in report.points:
        if p.fad_warning:
            print(f"aar: cfg {p.cfg:g}: {p.fad_warning}", file=sys.stderr)
    json_path = args.json or Path(args.output) / "report.json"
    write_json(json_path, report.to_dict())
    written = [str(json_path)]
    try:
        from aar.evaluation.plot import plot_guidance_sweep

        written.append(str(plot_guidance_sweep(report, args.plot or Path(args.output) / "guidance.png")))
    except MissingExtraError as err:
        print(f"aar: no plot: {err}", file=sys.stderr)
    if not args.quiet:
        print(f"wrote {', '.join(written)}")
    _report_errors(report.errors, args.quiet)
    return 0
