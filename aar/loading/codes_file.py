"""Codes files: ``AudioCodes`` on disk, tied to the tokenizer that can decode them.

A codes file is a safetensors file. Tensor ``codes.{i}`` holds scale ``i`` as int16 (int32 for
codebooks larger than 32768) shaped (B, W, s_i); the string metadata is::

    format                "aar-codes"
    format_version        "1"
    sample_rate           rate of the audio that was encoded, in Hz
    length                samples per item at the tokenizer's rate
    model_sample_rate     the tokenizer's rate (24000)
    window                samples per window at the tokenizer's rate
    scales                JSON list of tokens per window at each scale, e.g. "[1, 2, 4, ...]"
    codebook_size         V: every id lies in [0, V)
    tokenizer_fingerprint ``SATTokenizer.fingerprint()`` of the tokenizer that wrote them
    model                 the model's name or path, if known ("" otherwise)
    precision             the arithmetic that produced the codes: the generator's ``precision``
                          ("fp32", "bf16", "int8") for generated codes, the tokenizer's weight
                          dtype ("fp32", "bf16", "fp16") for encoded ones; absent from files
                          written before aar recorded it
    aar_version           the library version that wrote the file

Reading checks the file against itself (version, tensor names and shapes, id range) and, given a
tokenizer, against the tokenizer (fingerprint, scales, codebook size, window) before any decoding.

Legend: B batch, W one-second windows per item, S scales, s_i tokens of scale i in one window.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from aar.codes import AudioCodes
from aar.loading.files import atomic_path

if TYPE_CHECKING:
    from aar.tokenizer import SATTokenizer

FORMAT_NAME = "aar-codes"
FORMAT_VERSION = 1
#: Largest id that int16 storage can hold; bigger codebooks are stored as int32.
_INT16_MAX = 32767


#: Names of the weight dtypes a tokenizer runs in, as ``precision=`` spells them.
_DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.float64: "fp64"}


def _tokenizer_precision(tokenizer: SATTokenizer) -> str:
    dtype = next(tokenizer.parameters()).dtype
    return _DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


class CodesFileError(ValueError):
    """A codes file that is corrupt, of another format or version, or that does not fit the model."""


@dataclass(frozen=True)
class CodesHeader:
    """The metadata of a codes file, readable without loading its tensors.

    Attributes:
        path: The file.
        format_version: Version of the layout that wrote it.
        sample_rate: Rate of the audio that was encoded, in Hz.
        length: Samples per item at the tokenizer's rate.
        model_sample_rate: The tokenizer's rate, in Hz.
        window: Samples per window at the tokenizer's rate.
        scales: Tokens per window at each scale.
        codebook_size: Number of ids per scale ``V``.
        fingerprint: ``SATTokenizer.fingerprint()`` of the tokenizer that wrote the file.
        model: Name or path of that model, or ``""``.
        shapes: Shape (B, W, s_i) of each stored scale.
        precision: The arithmetic that produced the codes (module docstring), or ``""`` where the
            file does not say.
    """

    path: Path
    format_version: int
    sample_rate: int
    length: int
    model_sample_rate: int
    window: int
    scales: tuple[int, ...]
    codebook_size: int
    fingerprint: str
    model: str
    shapes: tuple[tuple[int, ...], ...]
    precision: str = ""


def save_codes(
    path: str | os.PathLike,
    codes: AudioCodes,
    tokenizer: SATTokenizer,
    *,
    model: str | os.PathLike | None = None,
    precision: str | None = None,
) -> Path:
    """Write codes to a codes file, atomically.

    Args:
        path: Output file (``.codes`` by convention). Its folder is created if needed.
        codes: Codes from ``tokenizer.encode`` (or a generator), ``codes[i]`` shaped (B, W, s_i).
        tokenizer: The tokenizer the codes belong to; they are checked against it and its
            fingerprint is recorded.
        model: Name or path of the model, recorded for people reading the file.
        precision: The arithmetic that produced the codes, recorded: pass ``gen.precision`` for
            generated codes. None: the tokenizer's weight dtype ("fp32" unless it was loaded in
            bfloat16 or float16), what encoded codes come from.

    Returns:
        The written path.

    Raises:
        TypeError: ``codes`` is not ``AudioCodes``.
        ValueError: the codes do not fit ``tokenizer`` (scales, shapes, ids).

    Example:
        >>> import tempfile, torch
        >>> from aar import SATConfig, SATTokenizer
        >>> from aar.loading.codes_file import load_codes, save_codes
        >>> tok = SATTokenizer(SATConfig(n_filters=4, dimension=8, latent_dim=8)).eval()
        >>> codes = tok.encode(torch.randn(1, 30000), 24000)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = save_codes(f"{tmp}/a.codes", codes, tok)
        ...     load_codes(path, tok).equal(codes)
        True
    """
    if not isinstance(codes, AudioCodes):
        raise TypeError(f"codes must be AudioCodes (it carries length and rate), got {type(codes).__name__}")
    levels = tokenizer.check_codes(codes)
    config = tokenizer.config
    dtype = torch.int16 if config.codebook_size - 1 <= _INT16_MAX else torch.int32
    tensors = {f"codes.{i}": c.detach().to("cpu", dtype).contiguous() for i, c in enumerate(levels)}
    from aar.version import __version__

    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "sample_rate": str(int(codes.sample_rate)),
        "length": str(int(codes.length)),
        "model_sample_rate": str(config.sample_rate),
        "window": str(config.window),
        "scales": json.dumps(list(config.scales)),
        "codebook_size": str(config.codebook_size),
        "tokenizer_fingerprint": tokenizer.fingerprint(),
        "model": "" if model is None else str(model),
        "precision": _tokenizer_precision(tokenizer) if precision is None else str(precision),
        "aar_version": __version__,
    }
    from safetensors.torch import save_file

    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_codes_header(path: str | os.PathLike) -> CodesHeader:
    """Read and validate a codes file's metadata without loading its tensors.

    Raises:
        FileNotFoundError: no such file.
        CodesFileError: not a codes file, an unsupported version, or inconsistent metadata.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"codes file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except Exception as err:  # safetensors raises SafetensorError, OSError, ValueError...
        raise CodesFileError(f"{path} is not an aar codes file (unreadable as safetensors: {err})") from None
    if meta.get("format") != FORMAT_NAME:
        raise CodesFileError(
            f"{path} is not an aar codes file: format is {meta.get('format')!r}, expected {FORMAT_NAME!r}"
        )
    version = _int_field(path, meta, "format_version")
    if version != FORMAT_VERSION:
        newer = " (written by a newer aar; upgrade to read it)" if version > FORMAT_VERSION else ""
        raise CodesFileError(
            f"{path} has codes-file version {version}; this aar reads version {FORMAT_VERSION}{newer}"
        )
    try:
        scales = tuple(int(s) for s in json.loads(meta["scales"]))
    except (KeyError, TypeError, ValueError):
        raise CodesFileError(f"{path}: metadata 'scales' is missing or not a JSON list of ints") from None
    header = CodesHeader(
        path=path,
        format_version=version,
        sample_rate=_int_field(path, meta, "sample_rate"),
        length=_int_field(path, meta, "length"),
        model_sample_rate=_int_field(path, meta, "model_sample_rate"),
        window=_int_field(path, meta, "window"),
        scales=scales,
        codebook_size=_int_field(path, meta, "codebook_size"),
        fingerprint=meta.get("tokenizer_fingerprint", ""),
        model=meta.get("model", ""),
        shapes=tuple(shapes.get(f"codes.{i}", ()) for i in range(len(scales))),
        precision=meta.get("precision", ""),
    )
    _check_self_consistent(header, set(shapes))
    return header


def load_codes(
    path: str | os.PathLike,
    tokenizer: SATTokenizer | None = None,
    *,
    check: bool = True,
) -> AudioCodes:
    """Read a codes file written by :func:`save_codes`.

    Everything is checked before any tensor is returned, so nothing is ever decoded from a file
    that does not fit: the format and version, the stored shapes against the recorded scales, the
    ids against the recorded codebook size, and, given ``tokenizer``, the file against it.

    Args:
        path: The codes file.
        tokenizer: The tokenizer that will decode the codes. With it, the file's scales, window,
            rate, codebook size and tokenizer fingerprint must match the tokenizer's.
        check: Set False to accept a file whose fingerprint differs (codes written by another
            tokenizer with the same layout). Scales, window, rate and codebook size are still checked,
            because decoding cannot work without them.

    Returns:
        ``AudioCodes`` with LongTensors ``codes[i]`` shaped (B, W, s_i), its ``length`` and
        ``sample_rate`` as saved.

    Raises:
        FileNotFoundError: no such file.
        CodesFileError: (a ``ValueError``) corrupt file, unsupported version, or a mismatch with
            ``tokenizer``; the message names what the file holds and what was expected.
    """
    header = read_codes_header(path)
    if tokenizer is not None:
        check_fits(header, tokenizer, check_fingerprint=check)
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(header.path))
    except Exception as err:
        raise CodesFileError(f"{header.path} is not an aar codes file (corrupt tensors: {err})") from None
    levels = []
    for i in range(len(header.scales)):
        c = tensors[f"codes.{i}"]
        if c.dtype not in (torch.int16, torch.int32, torch.int64):
            raise CodesFileError(f"{header.path}: codes.{i} has dtype {c.dtype}; expected int16 or int32")
        if c.numel() and (int(c.min()) < 0 or int(c.max()) >= header.codebook_size):
            raise CodesFileError(
                f"{header.path}: codes.{i} holds ids in [{int(c.min())}, {int(c.max())}]; "
                f"allowed: [0, {header.codebook_size})"
            )
        levels.append(c.long())
    return AudioCodes(tuple(levels), length=header.length, sample_rate=header.sample_rate)


def check_fits(header: CodesHeader, tokenizer: SATTokenizer, *, check_fingerprint: bool = True) -> None:
    """Refuse a codes file that ``tokenizer`` cannot decode, naming received vs expected.

    Raises:
        CodesFileError: scales, window, rate or codebook size differ, or (with ``check_fingerprint``) the
            fingerprint does.
    """
    config = tokenizer.config
    where = f"codes file {header.path}"
    if header.scales != tuple(config.scales):
        raise CodesFileError(
            f"{where} has {len(header.scales)} scales {list(header.scales)}; the tokenizer expects "
            f"{config.num_scales} scales {list(config.scales)}"
        )
    if header.codebook_size != config.codebook_size:
        raise CodesFileError(
            f"{where} has codebook size {header.codebook_size}; the tokenizer's is {config.codebook_size}"
        )
    if (header.window, header.model_sample_rate) != (config.window, config.sample_rate):
        raise CodesFileError(
            f"{where} has {header.window}-sample windows at {header.model_sample_rate} Hz; the "
            f"tokenizer's are {config.window} samples at {config.sample_rate} Hz"
        )
    if check_fingerprint and header.fingerprint != tokenizer.fingerprint():
        by = f" (model {header.model!r})" if header.model else ""
        raise CodesFileError(
            f"{where} was written by tokenizer {header.fingerprint!r}{by}, not by this tokenizer "
            f"{tokenizer.fingerprint()!r}: its ids would mean other sounds. Load it with check=False "
            "(CLI: --allow-mismatch) to decode anyway"
        )


def _int_field(path: Path, meta: dict[str, str], name: str) -> int:
    try:
        return int(meta[name])
    except (KeyError, TypeError, ValueError):
        got = meta.get(name)
        raise CodesFileError(f"{path}: metadata {name!r} is missing or not an integer: {got!r}") from None


def _check_self_consistent(h: CodesHeader, names: set[str]) -> None:
    expected = {f"codes.{i}" for i in range(len(h.scales))}
    if not h.scales or names != expected:
        raise CodesFileError(
            f"{h.path} holds tensors {sorted(names)}; expected {sorted(expected, key=lambda n: int(n[6:]))}"
        )
    lead = h.shapes[0][:2]
    for i, (s, shape) in enumerate(zip(h.scales, h.shapes)):
        if len(shape) != 3 or shape[2] != s or shape[:2] != lead or 0 in shape:
            raise CodesFileError(
                f"{h.path}: codes.{i} has shape {shape}; expected (B, W, {s}) with B, W of codes.0 {lead}"
            )
    for name in ("sample_rate", "model_sample_rate", "window", "codebook_size"):
        if getattr(h, name) < 1:
            raise CodesFileError(f"{h.path}: metadata {name!r} must be positive, got {getattr(h, name)}")
    if not 1 <= h.length <= lead[1] * h.window:
        raise CodesFileError(
            f"{h.path}: length {h.length} does not fit {lead[1]} window(s) of {h.window} samples"
        )
