"""What ``aar info`` reports: the kind of a model without building it, its config, sizes and rates,
and the header of a codes file.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any


def model_kind(name_or_path: str | os.PathLike) -> str:
    """``"sat"`` or ``"aar"``: which kind of model ``name_or_path`` names, without building it."""
    from aar.errors import WrongModelKindError
    from aar.loading import hub
    from aar.loading.official import folder_kind, read_checkpoint

    path = Path(name_or_path).expanduser()
    if path.is_file() and path.name in (hub.CONFIG_NAME, hub.WEIGHTS_NAME):
        path = path.parent
    if path.is_file():
        return read_checkpoint(path)[0]
    if path.is_dir() and not (path / hub.CONFIG_NAME).is_file():
        return "aar" if (path / hub.OFFICIAL_REPOS["qiuk6/AAR"]["aar"]).is_file() else "sat"
    source = hub.Source("native", path) if path.is_dir() else hub.resolve(name_or_path, "aar")
    if source.layout == "official":
        return "aar"
    config = source.read_config()
    kind = folder_kind(config)
    if kind not in ("sat", "aar"):
        found = config.get("model_type")
        detail = "" if kind else f" ({source.path / hub.CONFIG_NAME} has model_type {found!r})"
        raise WrongModelKindError(source.path, kind, ("sat", "aar"), detail)
    return kind


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def model_report(name_or_path, tokenizer=None, device=None) -> dict[str, Any]:
    """Config, parameter counts, fingerprint and token rates of a tokenizer or a generator."""
    from aar.generator import AARGenerator
    from aar.tokenizer import SATTokenizer

    gen = None
    if model_kind(name_or_path) == "aar":
        gen = AARGenerator.from_pretrained(name_or_path, tokenizer=tokenizer, device=device)
        tok = gen.tokenizer
    else:
        tok = SATTokenizer.from_pretrained(name_or_path, device=device)
    c = tok.config
    tokens_per_second = c.tokens_per_window * c.sample_rate / c.window
    parameters: dict[str, Any] = {"tokenizer": {
        "encoder": _count(tok.encoder), "quantizer": _count(tok.quantizer),
        "decoder": _count(tok.decoder), "total": _count(tok),
    }}
    if gen is not None:
        parameters["generator"] = {"transformer": _count(gen.transformer), "total": _count(gen)}
    report: dict[str, Any] = {
        "model": str(name_or_path),
        "kind": "generator (AAR) with its tokenizer (SAT)" if gen is not None else "tokenizer (SAT)",
        "tokenizer_fingerprint": tok.fingerprint(),
        "sample_rate": c.sample_rate,
        "window_samples": c.window,
        "frame_rate": c.frame_rate,
        "num_scales": c.num_scales,
        "scales": list(c.scales),
        "codebook_size": c.codebook_size,
        "tokens_per_window": c.tokens_per_window,
        "tokens_per_second": tokens_per_second,
        "bitrate_kbps": round(tokens_per_second * math.log2(c.codebook_size) / 1000, 3),
        "parameters": parameters,
    }
    if gen is not None:
        report["generator_config"] = gen.config.to_dict()
    report["tokenizer_config"] = c.to_dict()
    return report


def codes_file_report(path: str | os.PathLike) -> dict[str, Any]:
    """What a codes file holds, from its header alone."""
    from aar.loading.codes_file import FORMAT_NAME, read_codes_header

    h = read_codes_header(path)
    B, W = h.shapes[0][:2]
    return {
        "file": str(h.path),
        "format": f"{FORMAT_NAME} v{h.format_version}",
        "batch_size": B,
        "num_windows": W,
        "num_scales": len(h.scales),
        "scales": list(h.scales),
        "tokens": B * W * sum(h.scales),
        "length": h.length,
        "seconds": h.length / h.model_sample_rate,
        "source_sample_rate": h.sample_rate,
        "codebook_size": h.codebook_size,
        "tokenizer_fingerprint": h.fingerprint,
        "model": h.model,
        "precision": h.precision or "not recorded",
    }


def print_report(items: dict[str, Any], indent: str = "", counts: bool = False) -> None:
    """Print a report as indented ``key  value`` lines; counts under ``parameters`` get separators."""
    width = max(len(k) for k in items)
    for key, value in items.items():
        if isinstance(value, dict):
            print(f"{indent}{key}:")
            print_report(value, indent + "  ", counts or key == "parameters")
        else:
            if isinstance(value, (list, tuple)):
                value = ", ".join(map(str, value))
            print(f"{indent}{key:<{width}}  {f'{value:,}' if counts else value}")
