"""Corpus tokenization: datasets, Ray Data and folder paths give exactly ``tok.encode``'s codes."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SAT_PTH, TINY_SAT

from aar import SATTokenizer
from aar.audio import load_audio

datasets = pytest.importorskip("datasets")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from aar.data import folder as folder_module  # noqa: E402
from aar.data import hf as hf_module  # noqa: E402
from aar.data import list_audio_files, ray_tokenize, tokenize_dataset, tokenize_folder  # noqa: E402

#: (samples, rate) of the test clips: shorter than a window, several windows, other rates.
CLIPS = [(16000, 16000), (30000, 24000), (5000, 44100), (48000, 48000), (700, 8000)]


def _clip(i: int, samples: int, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(i)
    return (0.1 * rng.standard_normal((channels, samples))).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return SATTokenizer(TINY_SAT).eval().save_pretrained(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def tok(tiny_dir) -> SATTokenizer:
    return SATTokenizer.from_pretrained(tiny_dir)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory) -> Path:
    """Readable files in several formats, rates and channel counts, in sub-folders."""
    root = tmp_path_factory.mktemp("audio")
    (root / "b" / "c").mkdir(parents=True)
    names = ["a.wav", "b/x.flac", "b/c/y.ogg", "b/c/z.WAV", "m.flac"]
    for i, ((samples, rate), name) in enumerate(zip(CLIPS, names)):
        channels = 2 if name == "m.flac" else 1
        sf.write(root / name, _clip(i, samples, channels).T, rate)
    (root / "notes.txt").write_text("not audio")
    return root


def _expected(tok: SATTokenizer, wav, rate: int) -> list[np.ndarray]:
    return [c[0].numpy() for c in tok.encode(wav, rate)]


def _row_codes(row: dict, scales) -> list[np.ndarray]:
    return [np.asarray(row[f"codes_{i}"], dtype=np.int64).reshape(-1, s) for i, s in enumerate(scales)]


def _assert_row(row: dict, expected: list[np.ndarray], length: int, rate: int) -> None:
    got = _row_codes(row, [e.shape[-1] for e in expected])
    assert all(np.array_equal(g, e) for g, e in zip(got, expected))
    assert row["length"] == length and row["sample_rate"] == rate


# ---------------------------------------------------------------------- tokenize_dataset
def test_dataset_of_arrays_matches_encode(tok):
    items = [{"array": _clip(i, n)[0].astype(np.float64), "sampling_rate": r}
             for i, (n, r) in enumerate(CLIPS)]
    ds = datasets.Dataset.from_dict({"id": list(range(len(items))), "audio": items})
    out = tokenize_dataset(ds, tok, batch_size=2)
    assert out.column_names[:2] == ["id", "audio"] and len(out) == len(items)
    assert out.features["codes_0"] == datasets.Features.from_arrow_schema(
        pa.schema([pa.field("c", pa.list_(pa.list_(pa.int16())))]))["c"]
    for row, item in zip(out, items):
        c = tok.encode(item["array"], item["sampling_rate"])
        _assert_row(row, [x[0].numpy() for x in c], c.length, item["sampling_rate"])
        assert row["length"] == -(-len(item["array"]) * 24000 // item["sampling_rate"])


def test_dataset_of_paths_and_audio_feature(tok, audio_dir):
    files = [str(audio_dir / f) for f in list_audio_files(audio_dir)]
    expected = [(_expected(tok, *load_audio(f)), load_audio(f)[1]) for f in files]
    by_path = tokenize_dataset(datasets.Dataset.from_dict({"file": files}), tok, audio_column="file")
    feature = datasets.Dataset.from_dict({"audio": files}).cast_column("audio", datasets.Audio())
    by_feature = tokenize_dataset(feature, tok, batch_size=3)
    assert by_feature.features["audio"] == datasets.Audio()  # the feature survives
    for out in (by_path, by_feature):
        rows = out.select_columns([f"codes_{i}" for i in range(16)] + ["length", "sample_rate"])
        for row, (codes, rate) in zip(rows, expected):
            assert all(np.array_equal(g, e) for g, e in zip(_row_codes(row, TINY_SAT.scales), codes))
            assert row["sample_rate"] == rate


def test_dataset_bytes_and_raw_arrays_with_rate_column(tok, audio_dir):
    raw = [_clip(i, n)[0] for i, (n, _) in enumerate(CLIPS)]
    rates = [r for _, r in CLIPS]
    ds = datasets.Dataset.from_dict({"wav": raw, "sr": rates})
    out = tokenize_dataset(ds, tok, audio_column="wav", sample_rate_column="sr")
    for row, wav, rate in zip(out, raw, rates):
        assert row["sample_rate"] == rate
        assert all(np.array_equal(g, e) for g, e in zip(_row_codes(row, TINY_SAT.scales),
                                                        _expected(tok, wav, rate)))
    data = (audio_dir / "a.wav").read_bytes()
    row = tokenize_dataset(datasets.Dataset.from_dict({"audio": [data]}), tok)[0]
    assert all(np.array_equal(g, e) for g, e in zip(_row_codes(row, TINY_SAT.scales),
                                                    _expected(tok, *load_audio(audio_dir / "a.wav"))))


def test_dataset_keeps_format_and_dict(tok):
    ds = datasets.Dataset.from_dict({"audio": [{"array": _clip(0, 3000)[0], "sampling_rate": 24000}]})
    out = tokenize_dataset(ds.with_format("numpy"), tok)
    assert out.format["type"] == "numpy" and out[0]["codes_15"].shape == (1, 75)
    split = tokenize_dataset(datasets.DatasetDict({"train": ds, "test": ds}), tok)
    assert set(split) == {"train", "test"} and split["test"][0]["length"] == 3000


def test_dataset_num_proc_matches_one_process(tok):
    items = [{"array": _clip(i, n)[0], "sampling_rate": r} for i, (n, r) in enumerate(CLIPS)]
    ds = datasets.Dataset.from_dict({"audio": items})
    one = tokenize_dataset(ds, tok, batch_size=2).to_dict()
    two = tokenize_dataset(ds, tok, batch_size=1, num_proc=2).to_dict()
    assert one == two


def test_dataset_errors(tok):
    ds = datasets.Dataset.from_dict({"audio": ["/no/such/file.wav", None]})
    with pytest.raises(FileNotFoundError):
        tokenize_dataset(ds, tok)
    out = tokenize_dataset(ds, tok, errors="record")
    assert out[0]["codes_0"] is None and "FileNotFoundError" in out[0]["error"]
    assert out[1]["length"] is None and "null" in out[1]["error"]
    with pytest.raises(ValueError, match="errors must be one of"):
        tokenize_dataset(ds, tok, errors="skip")
    with pytest.raises(ValueError, match="not a column"):
        tokenize_dataset(ds, tok, audio_column="wav")
    with pytest.raises(ValueError, match="batch_size"):
        tokenize_dataset(ds, tok, batch_size=0)
    with pytest.raises(ValueError, match="num_proc"):
        tokenize_dataset(ds, tok, num_proc=0)
    with pytest.raises(TypeError, match="datasets.Dataset"):
        tokenize_dataset({"audio": []}, tok)
    raw = datasets.Dataset.from_dict({"wav": [[0.0, 0.1]]})
    with pytest.raises(ValueError, match="sample_rate_column"):
        tokenize_dataset(raw, tok, audio_column="wav")


def test_dataset_resumes_from_cache(tok, tmp_path, monkeypatch):
    items = [{"array": _clip(i, n)[0], "sampling_rate": r} for i, (n, r) in enumerate(CLIPS)]
    datasets.Dataset.from_dict({"audio": items}).save_to_disk(tmp_path / "ds")
    ds = datasets.load_from_disk(tmp_path / "ds")
    first = tokenize_dataset(ds, tok, batch_size=2)
    assert first.cache_files and first.cache_files[0]["filename"].startswith(str(tmp_path / "ds"))

    def refuse(*args, **kwargs):
        raise AssertionError("encoded again instead of loading the cache")

    monkeypatch.setattr(SATTokenizer, "encode", refuse)
    again = tokenize_dataset(datasets.load_from_disk(tmp_path / "ds"), tok, batch_size=4)
    assert again.to_dict() == first.to_dict()
    other = SATTokenizer(TINY_SAT).eval()  # other weights: another fingerprint, no cache hit
    assert hf_module.cache_fingerprint(ds._fingerprint, other, "audio", None, "raise") != \
        hf_module.cache_fingerprint(ds._fingerprint, tok, "audio", None, "raise")
    with pytest.raises(AssertionError, match="encoded again"):
        tokenize_dataset(ds, other)


def test_dataset_official_tokenizer(official_tokenizer):
    wav = _clip(3, 30000)[0]
    row = tokenize_dataset(datasets.Dataset.from_dict({"audio": [{"array": wav, "sampling_rate": 22050}]}),
                           official_tokenizer)[0]
    c = official_tokenizer.encode(wav, 22050)
    _assert_row(row, [x[0].numpy() for x in c], c.length, 22050)


def test_docstring_examples():
    import aar.data.hf

    assert doctest.testmod(aar.data.hf, optionflags=doctest.ELLIPSIS).failed == 0


# ---------------------------------------------------------------------- tokenize_folder
def _read_output(out: Path):
    return pq.read_table(sorted(out.glob("shard-*.parquet")))


def _assert_folder_output(out: Path, audio_dir: Path, tok: SATTokenizer, bad: set[str] = frozenset()):
    table = _read_output(out)
    assert table.column_names == ["path", "sample_rate", "length"] + [f"codes_{i}" for i in range(16)]
    good = [f for f in list_audio_files(audio_dir) if f not in bad]
    assert table.column("path").to_pylist() == good  # exactly one row per readable file, in order
    for row in table.to_pylist():
        wav, rate = load_audio(audio_dir / row["path"])
        c = tok.encode(wav, rate)
        _assert_row(row, [x[0].numpy() for x in c], c.length, rate)
    return table


def test_folder_writes_shards_errors_and_manifest(tok, tiny_dir, audio_dir, tmp_path):
    work = tmp_path / "in"
    work.mkdir()
    for f in list_audio_files(audio_dir):
        (work / f).parent.mkdir(parents=True, exist_ok=True)
        (work / f).write_bytes((audio_dir / f).read_bytes())
    (work / "b" / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    (work / "empty.flac").write_bytes(b"")
    sf.write(work / "silent.wav", np.zeros((0, 1), np.float32), 16000)
    summary = tokenize_folder(work, tmp_path / "out", tiny_dir, shard_size=3, progress=False)
    bad = {"b/corrupt.wav", "empty.flac", "silent.wav"}
    assert (summary.files, summary.rows, summary.errors) == (8, 5, 3)
    assert summary.shards == 3 and summary.skipped_shards == 0 and summary.processed_files == 8
    _assert_folder_output(tmp_path / "out", work, tok, bad)
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert {e["path"] for e in errors} == bad and all(e["error"] for e in errors)
    assert "no samples" in next(e["error"] for e in errors if e["path"] == "silent.wav")
    manifest = json.loads(summary.manifest.read_text())
    assert manifest["fingerprint"] == tok.fingerprint() and manifest["scales"] == list(TINY_SAT.scales)
    assert (manifest["count"], manifest["errors"], manifest["files"]) == (5, 3, 8)
    assert [s["file"] for s in manifest["shards"]] == [f"shard-0000{k}.parquet" for k in range(3)]
    assert sum(s["rows"] for s in manifest["shards"]) == 5
    assert not list((tmp_path / "out").glob(".*"))  # no temporaries left behind

    again = tokenize_folder(work, tmp_path / "out", tiny_dir, shard_size=3, progress=False)
    assert again.skipped_shards == 3 and again.processed_files == 0 and again.rows == 5
    assert json.loads(again.manifest.read_text()) == manifest


def test_folder_resumes_after_interruption(tok, tiny_dir, audio_dir, tmp_path, monkeypatch):
    calls = {"n": 0}
    encode = SATTokenizer.encode

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # dies in the middle of the second shard
            raise KeyboardInterrupt
        return encode(self, *args, **kwargs)

    monkeypatch.setattr(SATTokenizer, "encode", flaky)
    with pytest.raises(KeyboardInterrupt):
        tokenize_folder(audio_dir, tmp_path / "out", tiny_dir, shard_size=2, progress=False)
    assert [p.name for p in (tmp_path / "out").glob("shard-*")] == ["shard-00000.parquet"]
    assert not (tmp_path / "out" / "manifest.json").exists()
    (tmp_path / "out" / ".shard-00001.parquet.x1.part.parquet").write_bytes(b"half a shard")
    monkeypatch.setattr(SATTokenizer, "encode", encode)
    summary = tokenize_folder(audio_dir, tmp_path / "out", tiny_dir, shard_size=2, progress=False)
    assert summary.skipped_shards == 1 and summary.processed_files == 3 and summary.rows == 5
    _assert_folder_output(tmp_path / "out", audio_dir, tok)
    assert not list((tmp_path / "out").glob(".*"))


def test_folder_recomputes_changed_shards_and_refuses_other_model(tiny_dir, audio_dir, tmp_path):
    work = tmp_path / "in"
    work.mkdir()
    for name in ("a.wav", "m.flac"):
        (work / name).write_bytes((audio_dir / name).read_bytes())
    tokenize_folder(work, tmp_path / "out", tiny_dir, shard_size=1, progress=False)
    (work / "m.flac").unlink()
    (work / "b.wav").write_bytes((audio_dir / "a.wav").read_bytes())
    summary = tokenize_folder(work, tmp_path / "out", tiny_dir, shard_size=1, progress=False)
    assert summary.skipped_shards == 1 and summary.rows == 2  # shard 0 (a.wav) kept, shard 1 redone
    assert _read_output(tmp_path / "out").column("path").to_pylist() == ["a.wav", "b.wav"]
    (work / "b.wav").unlink()
    assert tokenize_folder(work, tmp_path / "out", tiny_dir, shard_size=1, progress=False).shards == 1
    assert [p.name for p in (tmp_path / "out").glob("shard-*")] == ["shard-00000.parquet"]
    with pytest.raises(ValueError, match="fingerprint"):
        tokenize_folder(work, tmp_path / "out", SAT_PTH, shard_size=1, progress=False)


@pytest.mark.slow  # spawns two worker processes, each importing torch
def test_folder_num_proc_matches_one_process(tiny_dir, audio_dir, tmp_path):
    tokenize_folder(audio_dir, tmp_path / "one", tiny_dir, shard_size=2, progress=False)
    summary = tokenize_folder(audio_dir, tmp_path / "two", tiny_dir, shard_size=2, num_proc=2, progress=False)
    assert summary.rows == 5
    assert _read_output(tmp_path / "two").equals(_read_output(tmp_path / "one"))


def test_folder_argument_errors(tiny_dir, audio_dir, tmp_path):
    with pytest.raises(FileNotFoundError):
        tokenize_folder(tmp_path / "missing", tmp_path / "out", tiny_dir)
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        tokenize_folder(tmp_path / "none", tmp_path / "out", tiny_dir, progress=False)
    with pytest.raises(ValueError, match="shard_size"):
        tokenize_folder(audio_dir, tmp_path / "out", tiny_dir, shard_size=0)
    with pytest.raises(ValueError, match="exclude each other"):
        tokenize_folder(audio_dir, tmp_path / "out", tiny_dir, num_proc=2, ray_address="local")
    with pytest.raises(TypeError, match="save_pretrained"):
        tokenize_folder(audio_dir, tmp_path / "out", SATTokenizer(TINY_SAT))


def test_shard_names_sort_as_numbers():
    names = [folder_module.shard_name(k, 123456) for k in (0, 9, 10, 123455)]
    assert names == sorted(names) and names[0] == "shard-000000.parquet"


# ---------------------------------------------------------------------- Ray
@pytest.mark.slow  # starts Ray actors, each importing torch
def test_ray_matches_encode(local_ray, tok, tiny_dir, audio_dir):
    import ray.data

    items = [{"id": i, "amp": _clip(i, n, channels=1 + i % 2), "sample_rate": r}
             for i, (n, r) in enumerate(CLIPS)]
    rows = ray_tokenize(ray.data.from_items(items), tiny_dir, audio_column="amp",
                        sample_rate_column="sample_rate", batch_size=2, concurrency=2).take_all()
    assert sorted(r["id"] for r in rows) == list(range(len(items)))
    for row in rows:
        item = items[row["id"]]
        c = tok.encode(item["amp"], item["sample_rate"])
        _assert_row(row, [x[0].numpy() for x in c], c.length, item["sample_rate"])

    files = [str(audio_dir / f) for f in list_audio_files(audio_dir)] + ["/no/such.wav"]
    rows = ray_tokenize(ray.data.from_items([{"audio": f} for f in files]), tiny_dir,
                        errors="record", concurrency=(1, 2)).take_all()
    by_file = {r["audio"]: r for r in rows}
    assert set(by_file) == set(files) and "FileNotFoundError" in by_file["/no/such.wav"]["error"]
    for f in files[:-1]:
        wav, rate = load_audio(f)
        c = tok.encode(wav, rate)
        assert by_file[f]["error"] is None
        _assert_row(by_file[f], [x[0].numpy() for x in c], c.length, rate)


@pytest.mark.slow  # starts Ray actors, each importing torch
def test_ray_folder_matches_one_process(local_ray, tok, tiny_dir, audio_dir, tmp_path):
    (tmp_path / "in").mkdir()
    for f in ("a.wav", "m.flac"):
        (tmp_path / "in" / f).write_bytes((audio_dir / f).read_bytes())
    (tmp_path / "in" / "broken.ogg").write_bytes(b"OggS broken")
    local = tokenize_folder(tmp_path / "in", tmp_path / "one", tiny_dir, shard_size=2, progress=False)
    on_ray = tokenize_folder(tmp_path / "in", tmp_path / "ray", tiny_dir, shard_size=2,
                             ray_address="local", progress=False)
    assert local_ray.is_initialized()  # an existing Ray is used, not shut down
    assert (on_ray.rows, on_ray.errors) == (local.rows, local.errors) == (2, 1)
    assert _read_output(tmp_path / "ray").equals(_read_output(tmp_path / "one"))
    assert (tmp_path / "ray" / "errors.jsonl").read_text() == (tmp_path / "one" / "errors.jsonl").read_text()


def test_ray_argument_errors(tiny_dir):
    with pytest.raises(TypeError, match="ray.data.Dataset"):
        ray_tokenize([1, 2], tiny_dir)
    pytest.importorskip("ray.data")
    import ray.data

    ds = ray.data.from_items([{"audio": "x.wav"}])
    with pytest.raises(TypeError, match="from_pretrained"):
        ray_tokenize(ds, SATTokenizer(TINY_SAT))
    with pytest.raises(ValueError, match="concurrency"):
        ray_tokenize(ds, tiny_dir, concurrency=(2, 1))
