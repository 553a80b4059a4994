"""Codes files: exact round trips, and refusals (version, fingerprint, shapes, corruption) before decoding."""

import doctest
import json

import pytest
import safetensors.torch
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import aar.loading.codes_file as codes_file_module
from aar import AudioCodes, SATConfig, SATTokenizer
from aar.loading.codes_file import (
    FORMAT_VERSION,
    CodesFileError,
    load_codes,
    read_codes_header,
    save_codes,
)

#: Tiny and fixed here: the mismatch cases below are written against codebook_size=64.
TINY = SATConfig(n_filters=4, dimension=8, latent_dim=8, codebook_size=64)


def _tok(config=TINY, seed=0) -> SATTokenizer:
    torch.manual_seed(seed)
    return SATTokenizer(config).eval()


def _random_codes(tok, batch=2, windows=3, length=None, sample_rate=16000) -> AudioCodes:
    g = torch.Generator().manual_seed(1)
    V = tok.config.codebook_size
    levels = tuple(torch.randint(0, V, (batch, windows, s), generator=g) for s in tok.config.scales)
    return AudioCodes(levels, length=length or windows * 24000 - 100, sample_rate=sample_rate)


def _metadata(path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata())


def _rewrite(path, metadata=None, tensors=None):
    """Rewrite a codes file with edited metadata and/or tensors."""
    meta = {**_metadata(path), **(metadata or {})}
    data = {**safetensors.torch.load_file(str(path)), **(tensors or {})}
    save_file({k: v for k, v in data.items() if v is not None}, str(path), metadata=meta)


@pytest.fixture
def no_tensor_reads(monkeypatch):
    """Fail the test if the tensors of a file are read (checks must come first)."""

    def refuse(*args, **kwargs):
        raise AssertionError("tensors were loaded before the file was refused")

    monkeypatch.setattr(safetensors.torch, "load_file", refuse)


def test_exact_round_trip_official(official_tokenizer, tmp_path):
    wav = torch.randn(1, 2, 25000) * 0.1
    codes = official_tokenizer.encode(wav, sample_rate=22050)
    path = save_codes(tmp_path / "x.codes", codes, official_tokenizer, model="fixture")
    back = load_codes(path, official_tokenizer)
    assert back.equal(codes) and all(c.dtype == torch.long for c in back) and back.num_windows == 2
    assert (back.length, back.sample_rate) == (codes.length, 22050)


def test_metadata_and_storage(tmp_path):
    tok = _tok()
    codes = _random_codes(tok)
    path = save_codes(tmp_path / "sub" / "x.codes", codes, tok, model="some/model")
    meta = _metadata(path)
    assert meta["format"] == "aar-codes" and meta["format_version"] == str(FORMAT_VERSION)
    assert json.loads(meta["scales"]) == list(tok.config.scales)
    assert meta["tokenizer_fingerprint"] == tok.fingerprint() and meta["model"] == "some/model"
    assert (meta["codebook_size"], meta["sample_rate"], meta["length"]) == ("64", "16000", str(codes.length))
    stored = safetensors.torch.load_file(str(path))
    assert sorted(stored) == sorted(f"codes.{i}" for i in range(16))
    assert all(stored[f"codes.{i}"].dtype == torch.int16 for i in range(16))
    header = read_codes_header(path)
    assert header.shapes == tuple((2, 3, s) for s in tok.config.scales) and header.model == "some/model"
    assert load_codes(path).equal(codes)  # readable without a tokenizer too
    assert [p.name for p in path.parent.iterdir()] == ["x.codes"]  # no temporary leftovers


def test_the_precision_that_made_the_codes_is_recorded(tmp_path):
    """Encoded codes: the tokenizer's weight dtype; generated ones: what the caller passes; a file
    that does not say (written before aar recorded it) reads as ``""``, and ``aar info`` says so."""
    from aar.cli.reports import codes_file_report

    tok = _tok()
    codes = _random_codes(tok)
    def recorded(name, tokenizer, **kwargs):
        return read_codes_header(save_codes(tmp_path / name, codes, tokenizer, **kwargs)).precision

    assert recorded("a.codes", tok) == "fp32"
    assert recorded("b.codes", tok.to(torch.bfloat16)) == "bf16"
    assert recorded("c.codes", tok, precision="int8") == "int8"
    meta = _metadata(tmp_path / "a.codes")
    del meta["precision"]
    tensors = safetensors.torch.load_file(str(tmp_path / "a.codes"))
    save_file(tensors, str(tmp_path / "old.codes"), metadata=meta)
    assert read_codes_header(tmp_path / "old.codes").precision == ""
    assert codes_file_report(tmp_path / "old.codes")["precision"] == "not recorded"
    assert load_codes(tmp_path / "old.codes", tok.float()).equal(codes)


def test_large_codebooks_use_int32(tmp_path):
    tok = _tok(SATConfig(n_filters=4, dimension=8, latent_dim=8, codebook_size=40000, scales=(1, 75)))
    codes = _random_codes(tok, batch=1, windows=1)
    path = save_codes(tmp_path / "x.codes", codes, tok)
    assert safetensors.torch.load_file(str(path))["codes.1"].dtype == torch.int32
    assert load_codes(path, tok).equal(codes)


def test_fingerprint_mismatch_and_override(tmp_path, no_tensor_reads, monkeypatch):
    writer, reader = _tok(seed=0), _tok(seed=1)  # same layout, other codebooks
    codes = _random_codes(writer)
    path = save_codes(tmp_path / "x.codes", codes, writer, model="writer-model")
    with pytest.raises(CodesFileError) as info:
        load_codes(path, reader)
    message = str(info.value)
    assert writer.fingerprint() in message and reader.fingerprint() in message
    assert "writer-model" in message and "check=False" in message and str(path) in message
    monkeypatch.undo()
    assert load_codes(path, reader, check=False).equal(codes)


@pytest.mark.parametrize(
    "config, expected",
    [
        (SATConfig(n_filters=4, dimension=8, latent_dim=8, codebook_size=128),
         "codebook size 64; the tokenizer's is 128"),
        (SATConfig(n_filters=4, dimension=8, latent_dim=8, codebook_size=64, scales=(1, 5, 75)),
         "has 16 scales"),
        (SATConfig(n_filters=4, dimension=8, latent_dim=8, codebook_size=64, window=12000, ratios=(8, 5, 4)),
         "24000-sample windows at 24000 Hz; the tokenizer's are 12000 samples"),
    ],
)
def test_shape_mismatch_refused_even_with_override(tmp_path, no_tensor_reads, config, expected):
    tok = _tok()
    path = save_codes(tmp_path / "x.codes", _random_codes(tok, windows=1, length=10), tok)
    for check in (True, False):
        with pytest.raises(CodesFileError, match=expected):
            load_codes(path, _tok(config), check=check)


def test_version_checked(tmp_path):
    tok = _tok()
    path = save_codes(tmp_path / "x.codes", _random_codes(tok), tok)
    _rewrite(path, {"format_version": str(FORMAT_VERSION + 1)})
    with pytest.raises(CodesFileError, match=f"version {FORMAT_VERSION + 1}.*newer aar"):
        load_codes(path, tok, check=False)
    _rewrite(path, {"format_version": "one"})
    with pytest.raises(CodesFileError, match="'format_version' is missing or not an integer"):
        load_codes(path)


@pytest.mark.parametrize(
    "metadata, tensors, expected",
    [
        ({"format": "pt"}, None, "not an aar codes file: format is 'pt'"),
        ({"scales": "[1, 2"}, None, "'scales' is missing or not a JSON list"),
        ({"length": "100000"}, None, "length 100000 does not fit 3 window"),
        (None, {"codes.15": None}, "expected .*'codes.15'"),
        (None, {"codes.16": torch.zeros(2, 3, 5, dtype=torch.int16)}, "expected"),
        (None, {"codes.3": torch.zeros(2, 3, 5, dtype=torch.int16)}, r"codes.3 has shape \(2, 3, 5\)"),
        (None, {"codes.3": torch.zeros(2, 1, 6, dtype=torch.int16)}, r"codes.3 has shape \(2, 1, 6\)"),
    ],
)
def test_inconsistent_files_refused(tmp_path, metadata, tensors, expected):
    tok = _tok()
    path = save_codes(tmp_path / "x.codes", _random_codes(tok), tok)
    _rewrite(path, metadata, tensors)
    with pytest.raises(CodesFileError, match=expected):
        load_codes(path, tok)


def test_ids_out_of_range_refused(tmp_path):
    tok = _tok()
    path = save_codes(tmp_path / "x.codes", _random_codes(tok), tok)
    _rewrite(path, tensors={"codes.5": torch.full((2, 3, 12), 64, dtype=torch.int16)})
    with pytest.raises(CodesFileError, match=r"codes.5 holds ids in \[64, 64\]; allowed: \[0, 64\)"):
        load_codes(path, tok)
    _rewrite(path, tensors={"codes.5": torch.full((2, 3, 12), 0.5)})
    with pytest.raises(CodesFileError, match="dtype torch.float32"):
        load_codes(path)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "model"])
def test_corrupt_or_foreign_files_name_the_file(tmp_path, damage):
    tok = _tok()
    path = tmp_path / "x.codes"
    if damage == "garbage":
        path.write_bytes(b"RIFF$\x00\x00\x00WAVEfmt " + bytes(100))
    elif damage == "truncated":
        save_codes(path, _random_codes(tok), tok)
        path.write_bytes(path.read_bytes()[:-40])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        tok.save_pretrained(tmp_path / "model")
        path = tmp_path / "model" / "model.safetensors"
    with pytest.raises(CodesFileError, match="not an aar codes file") as info:
        load_codes(path, tok)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="codes file not found"):
        load_codes(tmp_path / "nope.codes")


def test_save_validates_codes(tmp_path):
    tok = _tok()
    codes = _random_codes(tok)
    with pytest.raises(TypeError, match="AudioCodes"):
        save_codes(tmp_path / "x.codes", list(codes), tok)
    bad = AudioCodes(codes.codes[:-1], length=codes.length, sample_rate=codes.sample_rate)
    with pytest.raises(ValueError, match="expected 16 scales"):
        save_codes(tmp_path / "x.codes", bad, tok)
    assert not (tmp_path / "x.codes").exists()


def test_write_is_atomic(tmp_path, monkeypatch):
    tok = _tok()
    path = save_codes(tmp_path / "x.codes", _random_codes(tok), tok)
    before = path.read_bytes()

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_codes(path, _random_codes(tok, windows=1, length=5), tok)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["x.codes"]


def test_docstring_examples():
    assert doctest.testmod(codes_file_module).failed == 0
