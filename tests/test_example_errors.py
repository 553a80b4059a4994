"""The examples report ordinary errors in one line, as the ``aar`` command does, never a traceback."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SAT_PTH

from aar.cli import run_script

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script, *args, monkeypatch, capsys):
    """The script started as ``python examples/SCRIPT ARGS`` would start it, in this process."""
    monkeypatch.delenv("AAR_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", [script, *map(str, args)])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    return info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "script, args, message",
    [
        ("roundtrip.py", ["{empty}", "--model", SAT_PTH], "empty.wav holds no samples"),
        ("coarse_to_fine.py", ["--model", SAT_PTH, "--scales", "0", "17"],
         "--scales must each lie in [1, 16] for this model, got [0, 17]"),
        ("roundtrip.py", ["--model", "someone/not-cached"], "someone/not-cached"),
    ],
)
def test_examples_print_one_line_errors(tmp_path, monkeypatch, capsys, script, args, message):
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), 8000)
    monkeypatch.chdir(tmp_path)
    args = [str(a).format(empty=tmp_path / "empty.wav") for a in args]
    status, err = _run(script, *args, monkeypatch=monkeypatch, capsys=capsys)
    lines = err.strip().splitlines()
    assert status == 1, err
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error: ") and message in lines[0], lines
    assert "Traceback" not in err


def test_run_script_statuses(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["demo.py"])
    assert run_script(lambda argv: None) == 0 and run_script(lambda argv: 3) == 3
    assert run_script(lambda argv: open("/surely/missing.wav")) == 1
    assert capsys.readouterr().err == "demo.py: error: No such file or directory: /surely/missing.wav\n"
    monkeypatch.setenv("AAR_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        run_script(lambda argv: open("/surely/missing.wav"))
