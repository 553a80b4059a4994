"""A bounded load check of the demo page: 8 concurrent clients, 32 requests, every answer right, none lost.

``benchmarks/demo.py --load`` is the same check with figures (docs/performance.md); here it runs on
the tiny model, and the timing test checks the benchmark's report has its fields (never its times).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("benchmark_demo", BENCHMARKS / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_eight_clients_thirty_two_requests_none_lost(bench):
    gen = bench.build_generator(True)
    report = bench.load_check(gen, "tiny", clients=8, requests=32)
    assert report["answered"] == report["correct"] == 32 and report["lost"] == 0
    assert report["batch_sizes"] == [1] and report["generations"] == 32  # one request at a time
    assert 0 < report["p50_s"] <= report["p95_s"]
    assert "generate_codes" not in vars(gen)  # the counting wrapper is gone


def test_the_timing_benchmark_reports_both_precisions(bench, capsys):
    report = bench.main(["--tiny", "--repeats", "1"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == json.loads(json.dumps(report)) and report["model"] == "tiny"
    assert report["timings"][0]["precision"] == "fp32"
    for row in report["timings"]:
        for key in ("first_preview_s", "final_s"):
            assert 0 < row[key]["min"] <= row[key]["median"]
        assert row["first_preview_s"]["min"] < row["final_s"]["median"]
