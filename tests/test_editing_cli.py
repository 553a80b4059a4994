"""``aar generate --seconds/--overlap`` and ``aar vary``: outputs equal the library calls."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import AAR_PTH, SAT_PTH
from stand_ins import stand_in_clap

from aar.audio import load_audio
from aar.cli import main
from aar.conditioning.clap import ClapEncoder

MODEL = ["--model", str(AAR_PTH), "--tokenizer", str(SAT_PTH)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("editing-cli")
    clap = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    np.save(root / "clap.npy", clap / np.linalg.norm(clap))
    t = np.arange(26000) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.random.default_rng(1).standard_normal(t.size)
    sf.write(root / "tone.wav", tone.astype(np.float32), 16000)
    return root


def _read(path):
    data, rate = sf.read(path, dtype="float32")
    assert rate == 24000
    return data


def test_generate_seconds_matches_the_library(files, official_generator, tmp_path, capsys):
    out = tmp_path / "long.wav"
    assert main(["generate", "--clap", str(files / "clap.npy"), "-o", str(out), *MODEL, "--seconds", "2.5",
                 "--overlap", "0.5", "--seed", "3", "--progress"]) == 0  # stderr is captured: asked for
    assert "window" in capsys.readouterr().err  # the progress bar counts windows
    clap = torch.from_numpy(np.load(files / "clap.npy"))
    expected = official_generator.generate(clap, seconds=2.5, overlap=0.5, seed=3)
    got = _read(out)
    assert got.shape == (60000,)
    np.testing.assert_allclose(got, expected[0, 0].numpy(), atol=1e-6)


def test_generate_seconds_quietly(files, tmp_path, capsys):
    assert main(["-q", "generate", "--clap", str(files / "clap.npy"), "-o", str(tmp_path / "x.wav"), *MODEL,
                 "--seconds", "1.7", "--seed", "0"]) == 0
    assert capsys.readouterr().err == ""
    assert _read(tmp_path / "x.wav").shape == (40800,)


def test_vary_through_the_real_command(files, tmp_path):
    """The one subprocess run of ``aar vary``: the entry point, exit status 0, a quiet run."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "AAR_DEBUG": "", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "aar", "-q", "vary", str(files / "tone.wav"),
               "-o", str(tmp_path / "x.wav"), *MODEL, "--keep-scales", "3", "--clap", str(files / "clap.npy"),
               "--seed", "0"]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0 and run.stderr == "" and run.stdout == "", run.stderr
    assert _read(tmp_path / "x.wav").shape == (39000,)


def test_vary_keeps_all_scales_and_matches_the_library(files, official_generator, tmp_path, monkeypatch):
    calls = []

    def fake_from_pretrained(name_or_path=None, *, backend="laion-clap", device=None, **kwargs):
        calls.append(backend)
        return stand_in_clap()

    monkeypatch.setattr(ClapEncoder, "from_pretrained", fake_from_pretrained)
    monkeypatch.setattr(ClapEncoder, "check_installed", staticmethod(lambda backend="laion-clap": None))
    wav, rate = load_audio(files / "tone.wav")
    out = tmp_path / "same.wav"
    assert main(["vary", str(files / "tone.wav"), "-o", str(out), "--keep-scales", "16",
                 *MODEL, "-q"]) == 0
    same = official_generator.tokenizer.decode(official_generator.tokenizer.encode(wav, rate))
    np.testing.assert_allclose(_read(out), same[0, 0].numpy(), atol=1e-6)
    out = tmp_path / "v.wav"
    assert main(["vary", str(files / "tone.wav"), "-o", str(out), "--keep-scales", "5", "--seed", "2",
                 "--num-samples", "2", *MODEL, "-q"]) == 0
    clap = stand_in_clap().embed_audio(wav, rate)  # the input's own embedding
    for j in range(2):
        expected = official_generator.vary(wav, rate, keep_scales=5, clap_emb=clap, seed=2 + j)
        got = _read(tmp_path / f"v_{j}.wav")
        assert got.shape == (39000,)
        np.testing.assert_allclose(got, expected[0, 0].numpy(), atol=1e-6)
    assert calls == ["laion-clap", "laion-clap"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "--clap", "{clap}", "-o", "x.wav", "--overlap", "0.5"], "--overlap needs --seconds"),
        (["generate", "--clap", "{clap}", "-o", "x.wav", "--seconds", "2", "--overlap", "1"], "[0, 1)"),
        (["generate", "--clap", "{clap}", "-o", "x.wav", "--seconds", "0"], "[1/24000, 3600]"),
        (["generate", "--clap", "{clap}", "-o", "x.wav", "--seconds", "1e-9"], "one sample to one hour"),
        (["generate", "--clap", "{clap}", "-o", "x.wav", "--seconds", "1e9"], "one sample to one hour"),
        (["generate", "--clap", "{clap}", "-o", "x.wav", "--seconds", "2", "--save-codes"], "--save-codes"),
        (["vary", "{tone}", "-o", "x.wav", "--keep-scales", "17"], "an integer in [0, 16]"),
        (["vary", "{tone}", "-o", "x.wav", "--keep-scales", "20"], "(the model has 16 scales), got '20'"),
        (["vary", "{tone}", "-o", "x.wav", "--keep-scales", "-1"], "an integer in [0, 16]"),
        (["vary", "{tone}", "-o", "x.wav"], "--keep-scales"),
        (["vary", "{tone}", "-o", "x.wav", "--keep-scales", "3", "--prompt", "a", "--clap", "{clap}"],
         "not allowed with"),
    ],
)
def test_usage_errors(files, tmp_path, capsys, args, message):
    args = [a.format(clap=files / "clap.npy", tone=files / "tone.wav") for a in args]
    args = [str(tmp_path / a) if a == "x.wav" else a for a in args]
    extra = ["--clap", str(files / "clap.npy")] if args[0] == "vary" and "--clap" not in args else []
    assert main([*args, *MODEL, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aar: error:") and message in err and err.count("\n") == 1
