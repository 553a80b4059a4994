"""The scripts in examples/ run on the fixture models and tiny inputs, and do what they say."""

from __future__ import annotations

import math
import os
import re
import runpy
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import AAR_PTH, SAT_PTH
from stand_ins import stand_in_clap

from aar import load_audio
from aar.audio import resample, to_mono
from aar.conditioning.clap import ClapEncoder
from aar.data import list_audio_files
from aar.loading.codes_file import load_codes

pytestmark = pytest.mark.usefixtures("one_thread")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    t = np.arange(26000) / 22050
    sf.write(root / "clip.wav", (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 22050)
    (root / "tree" / "sub").mkdir(parents=True)
    noise = (0.1 * rng.standard_normal((30000, 2))).astype(np.float32)
    sf.write(root / "tree" / "a.wav", noise[:20000, 0], 16000)
    sf.write(root / "tree" / "sub" / "b.flac", noise, 24000)
    sf.write(root / "tree" / "sub" / "c.OPUS", noise[:9600], 48000, format="OGG", subtype="OPUS")
    three = np.concatenate([noise[:12000], noise[:12000, :1]], axis=1)  # (frames, 3 channels)
    sf.write(root / "tree" / "multi.w64", three, 11025)
    (root / "tree" / "sub" / "broken.ogg").write_bytes(b"OggS" + bytes(50))
    (root / "tree" / "notes.txt").write_text("not audio")
    v = rng.standard_normal(512).astype(np.float32)
    np.save(root / "clap.npy", v / np.linalg.norm(v))
    return root


def _run(script, *args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _run_here(script, *args, cwd):
    """``script`` run in this process as ``__main__`` (one torch thread, as ``_run`` gives it), its
    exit status and printed output in ``_run``'s form."""
    import contextlib
    import io
    from types import SimpleNamespace

    out, err = io.StringIO(), io.StringIO()
    argv, threads, here = sys.argv, torch.get_num_threads(), os.getcwd()
    sys.argv = [str(EXAMPLES / script), *map(str, args)]
    torch.set_num_threads(1)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(str(EXAMPLES / script), run_name="__main__")
        code = 0
    except SystemExit as end:  # the scripts end in sys.exit(run_script(main))
        code = end.code
    finally:
        sys.argv = argv
        torch.set_num_threads(threads)
        os.chdir(here)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


@pytest.fixture(scope="module")
def runs(inputs, tmp_path_factory):
    """Every script once: the round trip started as a user would (a process of its own), the others
    in this process while it runs."""
    out = tmp_path_factory.mktemp("outputs")
    in_process = {
        "coarse_to_fine": ("coarse_to_fine.py", inputs / "clip.wav", "--model", SAT_PTH,
                           "--out-dir", out / "previews", "--scales", "1", "4", "16"),
        "text_to_audio": ("text_to_audio.py", "a cat", "--model", AAR_PTH, "--tokenizer", SAT_PTH,
                          "--clap", inputs / "clap.npy", "--seed", "3", "--out", out / "cat.wav"),
        "variation": ("variation.py", "--model", AAR_PTH, "--tokenizer", SAT_PTH,
                      "--clap", inputs / "clap.npy", "--num", "2", "--seed", "5",
                      "--out-dir", out / "variations"),
        "tokenize_folder": ("tokenize_folder.py", inputs / "tree", out / "codes", "--model", SAT_PTH),
    }
    with ThreadPoolExecutor(max_workers=1) as pool:
        roundtrip = pool.submit(_run, "roundtrip.py", inputs / "clip.wav", "--model", SAT_PTH,
                                "--out", out / "clip.wav", cwd=out)
        results = {name: _run_here(*job, cwd=out) for name, job in in_process.items()}
        results["roundtrip_file"] = roundtrip.result()
    return out, results


def _ok(result):
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return result.stdout


def test_roundtrip(runs, inputs, official_tokenizer):
    out, results = runs
    stdout = _ok(results["roundtrip_file"])
    wav, rate = load_audio(inputs / "clip.wav")
    codes = official_tokenizer.encode(wav, rate)
    decoded = official_tokenizer.decode(codes)
    reference = resample(to_mono(wav.unsqueeze(0)), rate, 24000)
    snr = 10 * torch.log10(reference.pow(2).sum() / (reference - decoded).pow(2).sum())
    printed = float(re.search(r"SNR: (-?[\d.]+) dB", stdout).group(1))
    assert printed == pytest.approx(float(snr), abs=0.01)
    assert "2 window(s) x 455 tokens" in stdout
    written, _ = sf.read(out / "clip.wav", dtype="float32")
    np.testing.assert_allclose(written, decoded[0, 0].numpy(), atol=1e-4)


def test_coarse_to_fine(runs, inputs, official_tokenizer):
    out, results = runs
    stdout = _ok(results["coarse_to_fine"])
    wav, rate = load_audio(inputs / "clip.wav")
    codes = official_tokenizer.encode(wav, rate)
    assert sorted(p.name for p in (out / "previews").iterdir()) == [
        "preview_k01.wav", "preview_k04.wav", "preview_k16.wav"]
    for k, tokens in ((1, 1), (4, 13), (16, 455)):
        preview, _ = sf.read(out / "previews" / f"preview_k{k:02d}.wav", dtype="float32")
        expected = official_tokenizer.decode(codes, num_scales=k)[0, 0].numpy()
        np.testing.assert_allclose(preview, expected, atol=1e-4)
        assert f"k={k:2d}: {tokens:3d} tokens per window" in stdout


def test_text_to_audio_and_variation_with_clap_files(runs, inputs, official_generator):
    out, results = runs
    _ok(results["text_to_audio"])
    _ok(results["variation"])
    clap = torch.from_numpy(np.load(inputs / "clap.npy"))
    cat, rate = sf.read(out / "cat.wav", dtype="float32")
    assert rate == 24000
    np.testing.assert_allclose(cat, official_generator.generate(clap, seed=3)[0, 0].numpy(), atol=1e-6)
    for i in range(2):
        variation, _ = sf.read(out / "variations" / f"variation_{i}.wav", dtype="float32")
        expected = official_generator.generate(clap, seed=5 + i)[0, 0].numpy()
        np.testing.assert_allclose(variation, expected, atol=1e-6)


def test_tokenize_folder(runs, inputs, official_tokenizer):
    out, results = runs
    result = results["tokenize_folder"]
    assert result.returncode == 1 and "Traceback" not in result.stderr  # one file could not be read
    assert "sub/broken.ogg" in result.stderr and "4 written, 0 already there, 1 failed" in result.stdout
    written = sorted(str(p.relative_to(out / "codes")) for p in (out / "codes").rglob("*.codes"))
    assert written == ["a.wav.codes", "multi.w64.codes", "sub/b.flac.codes", "sub/c.OPUS.codes"]
    # the example picks exactly the files `aar tokenize` picks
    assert [f"{f}.codes" for f in list_audio_files(inputs / "tree") if "broken" not in f] == written
    for rel in ("a.wav", "multi.w64", "sub/b.flac", "sub/c.OPUS"):
        wav, rate = load_audio(inputs / "tree" / rel)
        codes = load_codes(out / "codes" / f"{rel}.codes", official_tokenizer)
        assert codes.equal(official_tokenizer.encode(wav[None], rate)) and codes.sample_rate == rate


def _run_in_process(script, argv, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / script), *map(str, argv)])
    with pytest.raises(SystemExit) as info:  # the scripts end in sys.exit(run_script(main))
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert info.value.code == 0


def test_default_input_is_a_test_tone(tmp_path, monkeypatch, capsys):
    _run_in_process("roundtrip.py", ["--model", SAT_PTH, "--out", tmp_path / "tone.wav"], monkeypatch)
    tone, rate = sf.read(tmp_path / "tone.wav", dtype="float32")
    assert rate == 24000 and tone.shape == (48000,) and "SNR" in capsys.readouterr().out


def test_roundtrip_reads_any_channel_count(inputs, official_tokenizer, tmp_path, monkeypatch, capsys):
    """A three-channel 11.025 kHz file goes in as it is: averaged to mono, resampled to 24 kHz."""
    _run_in_process("roundtrip.py", [inputs / "tree" / "multi.w64", "--model", SAT_PTH,
                                     "--out", tmp_path / "multi.wav"], monkeypatch)
    wav, rate = load_audio(inputs / "tree" / "multi.w64")
    assert wav.shape == (3, 12000) and rate == 11025
    expected = official_tokenizer.decode(official_tokenizer.encode(wav[None], rate))
    written, written_rate = sf.read(tmp_path / "multi.wav", dtype="float32")
    assert written_rate == 24000 and written.shape == (math.ceil(12000 * 24000 / 11025),)
    np.testing.assert_allclose(written, expected[0, 0].numpy(), atol=1e-4)
    assert "2 window(s) x 455 tokens" in capsys.readouterr().out


def test_prompt_and_audio_go_through_clap(inputs, official_generator, tmp_path, monkeypatch, capsys):
    """Without --clap, the scripts embed the prompt or the audio with CLAP (a stand-in here)."""
    monkeypatch.setattr(ClapEncoder, "from_pretrained", lambda *args, **kwargs: stand_in_clap())
    monkeypatch.setattr(ClapEncoder, "check_installed", staticmethod(lambda backend="laion-clap": None))
    clap = stand_in_clap()
    _run_in_process("text_to_audio.py", ["dry leaves", "--model", AAR_PTH, "--tokenizer", SAT_PTH,
                                         "--out", tmp_path / "leaves.wav"], monkeypatch)
    expected = official_generator.generate(clap.embed_text("dry leaves"), seed=0)
    np.testing.assert_allclose(sf.read(tmp_path / "leaves.wav", dtype="float32")[0], expected[0, 0].numpy(),
                               atol=1e-6)

    _run_in_process("variation.py", [inputs / "clip.wav", "--model", AAR_PTH, "--tokenizer", SAT_PTH,
                                     "--num", "1", "--out-dir", tmp_path], monkeypatch)
    wav, rate = load_audio(inputs / "clip.wav")
    expected = official_generator.generate(clap.embed_audio(wav, rate), seed=0)
    np.testing.assert_allclose(sf.read(tmp_path / "variation_0.wav", dtype="float32")[0],
                               expected[0, 0].numpy(), atol=1e-6)
    assert "dry leaves" in capsys.readouterr().out
