"""``benchmarks/long_generation.py --tiny`` runs and prints its JSON report (timings unchecked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "long_generation.py"


@pytest.mark.slow  # a benchmark run in a subprocess: generation at three lengths
def test_long_generation_benchmark_tiny():
    command = [sys.executable, str(SCRIPT), "--tiny", "--device", "cpu"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert report["benchmark"] == "long_generation" and report["model"] == "tiny"
    assert (report["generated_seconds"], report["runs"], report["device"]) == (3.0, 1, "cpu")
    assert [r["overlap"] for r in report["results"]] == [0.25, 0.5]
    assert [r["windows"] for r in report["results"]] == [4, 5]  # 1 + ceil(2 s / hop)
    for result in report["results"]:
        assert set(result) == {"overlap", "windows", "output_samples", "seconds",
                               "seconds_per_generated_second", "seconds_per_window"}
        assert result["output_samples"] == 72000
        assert all(isinstance(result[k], float) for k in ("seconds", "seconds_per_generated_second"))
    assert isinstance(report["one_window_seconds"], float)
    assert {"before", "after"} <= set(report["load_average_1min"])
    assert any(line.lstrip().startswith("overlap") for line in lines[:-1])  # the human-readable table
