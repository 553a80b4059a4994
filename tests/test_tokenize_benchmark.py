"""``benchmarks/tokenize_corpus.py --tiny`` runs every mode and prints its JSON report (timings unchecked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("ray.data")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "tokenize_corpus.py"


@pytest.mark.slow
def test_tokenize_corpus_benchmark_tiny():
    run = subprocess.run([sys.executable, str(SCRIPT), "--tiny"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert report["benchmark"] == "tokenize_corpus" and report["model"] == "tiny"
    assert (report["clips"], report["clip_seconds"], report["sample_rate"]) == (4, 2.0, 24000)
    assert report["identical_outputs"] is True
    assert [r["mode"] for r in report["results"]] == ["single", "num_proc", "ray"]
    assert [r["workers"] for r in report["results"]] == [1, 2, 2]
    for result in report["results"]:
        assert set(result) == {"mode", "workers", "seconds", "clips_per_second", "audio_seconds_per_second"}
        assert all(isinstance(result[k], (int, float)) for k in ("seconds", "clips_per_second"))
    assert isinstance(report["ray_init_seconds"], (int, float))
    assert {"before", "after"} <= set(report["load_average_1min"])
    assert any(line.startswith("mode") for line in lines[:-1])  # the human-readable table
