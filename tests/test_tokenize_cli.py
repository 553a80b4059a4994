"""``aar tokenize IN OUT``: the command gives the library's rows and records what it cannot read."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TINY_SAT

from aar import SATTokenizer
from aar.audio import load_audio

pq = pytest.importorskip("pyarrow.parquet")


def _has_tokenize_command() -> bool:
    try:
        from aar.cli import build_parser
    except ImportError:
        return False
    try:
        build_parser().parse_args(["tokenize", "in", "out"])
    except SystemExit:
        return False
    return True


pytestmark = pytest.mark.skipif(not _has_tokenize_command(), reason="aar.cli has no tokenize command yet")


def test_cli_tokenize_folder_with_corrupt_and_empty_files(tmp_path):
    torch.manual_seed(0)
    tok = SATTokenizer(TINY_SAT).eval()
    model = tok.save_pretrained(tmp_path / "model")
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    sf.write(src / "one.wav", 0.1 * rng.standard_normal(20000).astype(np.float32), 16000)
    sf.write(src / "sub" / "two.flac", 0.1 * rng.standard_normal((30000, 2)).astype(np.float32), 24000)
    (src / "corrupt.wav").write_bytes(b"RIFF" + bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
    (src / "sub" / "empty.ogg").write_bytes(b"")

    run = subprocess.run(
        [sys.executable, "-m", "aar", "tokenize", str(src), str(tmp_path / "out"), "--model", str(model)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 1, run.stderr  # finished, but some files failed
    assert "errors.jsonl" in run.stderr

    out = tmp_path / "out"
    table = pq.read_table(sorted(out.glob("shard-*.parquet")))
    assert table.column("path").to_pylist() == ["one.wav", "sub/two.flac"]
    for row in table.to_pylist():
        wav, rate = load_audio(src / row["path"])
        codes = tok.encode(wav, rate)
        assert row["length"] == codes.length and row["sample_rate"] == rate
        for i, c in enumerate(codes):
            assert np.array_equal(np.asarray(row[f"codes_{i}"]), c[0].numpy())
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(e["path"] for e in errors) == ["corrupt.wav", "sub/empty.ogg"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fingerprint"] == tok.fingerprint() and manifest["count"] == 2
