"""The ``aar`` command: ``main`` in-process, and the real command in subprocesses (``python -m aar``:
the seeded generate run and the one-line errors)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import AAR_PTH, SAT_PTH
from stand_ins import stand_in_clap

from aar import SATTokenizer
from aar.audio import load_audio
from aar.cli import main
from aar.conditioning.clap import ClapEncoder
from aar.loading.codes_file import CodesFileError, load_codes, read_codes_header, save_codes

pytestmark = pytest.mark.usefixtures("one_thread")


def aar_cmd(*args, cwd=None, env=None):
    """Start the real command; returns the Popen (stdout/stderr captured as text).

    One thread per process: on a busy 2-core machine torch's thread pool only spins. Codes do not
    depend on it; audio differs from a 2-thread run by ~1e-7.
    """
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "AAR_DEBUG": "", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "aar", *map(str, args)], cwd=cwd, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc) -> SimpleNamespace:
    out, err = proc.communicate(timeout=300)
    return SimpleNamespace(returncode=proc.returncode, stdout=out, stderr=err)


def run_aar(*args, **kwargs) -> SimpleNamespace:
    return finish(aar_cmd(*args, **kwargs))


def _write_tone(path, seconds=1.3, rate=16000, channels=2):
    t = np.arange(round(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * np.random.default_rng(0).standard_normal(t.size)
    sf.write(path, np.stack([tone] * channels, axis=1).astype(np.float32), rate)
    return path


def _unit(seed, shape=(512,)):
    v = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def work(tmp_path_factory, official_generator):
    """A folder with a native generator, a tone, CLAP vectors and a few broken inputs."""
    root = tmp_path_factory.mktemp("cli")
    official_generator.save_pretrained(root / "gen")
    _write_tone(root / "tone.wav")
    np.save(root / "clap.npy", _unit(0))
    np.save(root / "clap3.npy", np.ones(3, dtype=np.float32))
    (root / "garbage.wav").write_bytes(b"RIFF" + bytes(range(200)))
    (root / "garbage.codes").write_bytes(bytes(range(256)))
    torch.manual_seed(1)  # same layout as the fixture tokenizer, other weights: another fingerprint
    other = SATTokenizer(official_generator.tokenizer.config).eval()
    save_codes(root / "other.codes", other.encode(torch.randn(1, 24000) * 0.1, 24000), other)
    return root


# ------------------------------------------------------------------------------------- main flows
def test_encode_then_decode(work, official_tokenizer, tmp_path, capsys):
    tone, codes_file = str(work / "tone.wav"), str(tmp_path / "tone.codes")
    assert main(["encode", tone, codes_file, "--model", str(SAT_PTH)]) == 0
    assert "wrote" in (out := capsys.readouterr().out) and "2 window(s)" in out
    wav, rate = load_audio(work / "tone.wav")
    expected = official_tokenizer.encode(wav, rate)
    codes = load_codes(tmp_path / "tone.codes", official_tokenizer)
    assert codes.equal(expected) and (codes.length, codes.sample_rate) == (expected.length, 16000)

    # a generator folder is accepted where a tokenizer is wanted
    assert main(["--quiet", "decode", str(tmp_path / "tone.codes"), str(tmp_path / "back.wav"),
                 "--model", str(work / "gen")]) == 0
    assert capsys.readouterr() == ("", "")
    back, back_rate = sf.read(tmp_path / "back.wav", dtype="float32")
    assert back_rate == 24000 and back.shape == (math.ceil(wav.shape[-1] * 24000 / 16000),)
    np.testing.assert_allclose(back, official_tokenizer.decode(expected)[0, 0].numpy(), atol=1e-6)


def test_generate_is_reproducible_with_a_seed(work, official_generator, tmp_path, capsys):
    """A seeded run of the real command gives the library's audio, and so does a second run in-process."""
    args = ["generate", "--clap", str(work / "clap.npy"), "--model", str(work / "gen"), "--seed", "5", "-q"]
    result = run_aar(*args, "-o", tmp_path / "a.wav")
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", result.stderr
    assert main([*args, "-o", str(tmp_path / "b.wav")]) == 0
    a, rate = sf.read(tmp_path / "a.wav", dtype="float32")
    b, _ = sf.read(tmp_path / "b.wav", dtype="float32")
    assert rate == 24000 and a.shape == (24000,) and np.array_equal(a, b)
    library = official_generator.generate(torch.from_numpy(np.load(work / "clap.npy")), seed=5)
    np.testing.assert_allclose(a, library[0, 0].numpy(), atol=1e-6)


def test_convert_then_info(work, official_tokenizer, official_generator, tmp_path, capsys):
    assert main(["convert", str(AAR_PTH), str(tmp_path / "native"), "--tokenizer", str(SAT_PTH)]) == 0
    written = sorted(p.name for p in (tmp_path / "native").iterdir())
    assert written == ["config.json", "model.safetensors", "tokenizer"]
    capsys.readouterr()
    assert main(["info", str(tmp_path / "native"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tokenizer_fingerprint"] == official_tokenizer.fingerprint()
    assert report["tokens_per_window"] == 455 and report["tokens_per_second"] == 455.0
    assert report["parameters"]["generator"]["transformer"] == sum(
        p.numel() for p in official_generator.transformer.parameters())
    assert report["generator_config"]["depth"] == 2 and report["tokenizer_config"]["latent_dim"] == 16


# ----------------------------------------------------------------------------- in-process variations
def test_info_text_for_tokenizer_and_codes_file(work, official_tokenizer, capsys):
    assert main(["info", str(SAT_PTH)]) == 0
    out = capsys.readouterr().out
    assert "tokenizer (SAT)" in out and official_tokenizer.fingerprint() in out and "1,209,065" in out
    assert main(["info", str(work / "other.codes")]) == 0
    out = capsys.readouterr().out
    assert "aar-codes v1" in out and "num_windows" in out
    assert main(["info", str(SAT_PTH), "--device", "cpu", "--json", "-q"]) == 0  # options after the command
    assert json.loads(capsys.readouterr().out)["kind"] == "tokenizer (SAT)"


def test_decode_variants(work, official_tokenizer, tmp_path, capsys):
    codes = official_tokenizer.encode(torch.randn(3, 1, 30000) * 0.1, 24000)
    save_codes(tmp_path / "batch.codes", codes, official_tokenizer)
    out = tmp_path / "batch.flac"
    assert main(["decode", str(tmp_path / "batch.codes"), str(out), "--model", str(SAT_PTH),
                 "--num-scales", "4", "--batch-size", "2"]) == 0
    full = official_tokenizer.decode(codes, num_scales=4)
    for b in range(3):
        wav, rate = sf.read(tmp_path / f"batch_{b}.flac", dtype="float32")
        assert rate == 24000 and wav.shape == (30000,)
        np.testing.assert_allclose(wav, full[b, 0].numpy(), atol=1e-4)  # 16-bit FLAC
    assert main(["decode", str(work / "other.codes"), str(tmp_path / "x.ogg"), "--model", str(SAT_PTH),
                 "--allow-mismatch", "-q"]) == 0
    assert sf.info(tmp_path / "x.ogg").frames == 24000
    assert "batch_0.flac, " in capsys.readouterr().out


def test_generate_samples_and_codes(work, official_generator, tmp_path, capsys):
    np.save(tmp_path / "two.npy", _unit(1, (2, 512)))
    out = tmp_path / "g.wav"
    assert main(["generate", "--clap", str(tmp_path / "two.npy"), "-o", str(out), "--model",
                 str(work / "gen"), "--num-samples", "2", "--seed", "7", "--save-codes", "--top-k", "0",
                 "--top-p", "1", "--progress"]) == 0  # captured stderr is no terminal: bars when asked
    captured = capsys.readouterr()
    assert "4/4" in captured.err  # the progress bar
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["g_0.codes", "g_0.wav", "g_1.codes", "g_1.wav", "g_2.codes", "g_2.wav",
                     "g_3.codes", "g_3.wav", "two.npy"]
    clap = torch.from_numpy(np.load(tmp_path / "two.npy"))
    for j in (1, 2):  # output j: condition j // 2, seed 7 + j
        expected = official_generator.generate_codes(clap[j // 2], seed=7 + j, top_k=0, top_p=None)
        assert load_codes(tmp_path / f"g_{j}.codes", official_generator.tokenizer).equal(expected)
    assert read_codes_header(tmp_path / "g_0.codes").precision == "fp32"
    # The four outputs were drawn as one batch; one call per output writes the same codes and samples
    # (not the same bytes: a float WAV holds the second it was written, in its PEAK chunk, and
    # safetensors writes its metadata in any order).
    alone = tmp_path / "alone"
    assert main(["generate", "--clap", str(tmp_path / "two.npy"), "-o", str(alone / "g.wav"), "--model",
                 str(work / "gen"), "--num-samples", "2", "--seed", "7", "--save-codes", "--top-k", "0",
                 "--top-p", "1", "--batch-size", "1", "-q"]) == 0
    for j in range(4):
        codes = load_codes(alone / f"g_{j}.codes", official_generator.tokenizer)
        assert codes.equal(load_codes(tmp_path / f"g_{j}.codes", official_generator.tokenizer)), j
        assert np.array_equal(sf.read(alone / f"g_{j}.wav")[0], sf.read(tmp_path / f"g_{j}.wav")[0]), j


def test_codes_files_record_the_precision_that_made_them(work, tmp_path, capsys):
    """Generated codes carry the generator's precision (int8 here), encoded ones the tokenizer's, and
    ``aar info`` shows it."""
    assert main(["generate", "--clap", str(work / "clap.npy"), "-o", str(tmp_path / "g.wav"), "--model",
                 str(work / "gen"), "--seed", "1", "--save-codes", "--precision", "int8", "-q"]) == 0
    assert main(["encode", str(work / "tone.wav"), str(tmp_path / "tone.codes"), "--model", str(SAT_PTH),
                 "-q"]) == 0
    assert read_codes_header(tmp_path / "g.codes").precision == "int8"
    assert read_codes_header(tmp_path / "tone.codes").precision == "fp32"
    assert main(["info", str(tmp_path / "g.codes"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "int8"
    assert main(["info", str(work / "other.codes")]) == 0  # written by save_codes: the tokenizer's
    assert "fp32" in capsys.readouterr().out


def test_long_generation_batches_write_what_single_calls_write(work, tmp_path):
    """--seconds: outputs in batches of 2 (the last one alone) are the files of one call per output."""
    common = ["generate", "--clap", str(work / "clap.npy"), "--model", str(work / "gen"), "--seed", "4",
              "--num-samples", "3", "--seconds", "1.5", "--precision", "int8", "-q"]
    assert main([*common, "-o", str(tmp_path / "batched" / "l.wav"), "--batch-size", "2"]) == 0
    assert main([*common, "-o", str(tmp_path / "alone" / "l.wav"), "--batch-size", "1"]) == 0
    for j in range(3):
        batched, rate = sf.read(tmp_path / "batched" / f"l_{j}.wav", dtype="float32")
        assert rate == 24000 and batched.shape == (36000,)
        assert np.array_equal(batched, sf.read(tmp_path / "alone" / f"l_{j}.wav", dtype="float32")[0]), j


@pytest.mark.parametrize("condition", ["prompt", "audio"])
def test_generate_from_prompt_or_audio(work, official_generator, tmp_path, monkeypatch, condition):
    calls = []

    def fake_from_pretrained(name_or_path=None, *, backend="laion-clap", device=None, **kwargs):
        calls.append((name_or_path, backend))
        return stand_in_clap()

    monkeypatch.setattr(ClapEncoder, "from_pretrained", fake_from_pretrained)
    stand_in = stand_in_clap()
    if condition == "prompt":
        args, clap = ["--prompt", "rain on a tin roof"], stand_in.embed_text("rain on a tin roof")
    else:
        wav, rate = load_audio(work / "tone.wav")
        args, clap = ["--audio", str(work / "tone.wav")], stand_in.embed_audio(wav, rate)
    out = tmp_path / "c.wav"
    assert main(["generate", *args, "-o", str(out), "--model", str(work / "gen"), "--seed", "3",
                 "--clap-backend", "transformers", "--cfg", "2.5", "-q"]) == 0
    assert calls == [(None, "transformers")]
    expected = official_generator.generate(clap, seed=3, cfg=2.5)
    np.testing.assert_allclose(sf.read(out, dtype="float32")[0], expected[0, 0].numpy(), atol=1e-6)


def test_tokenize_is_wired_to_the_data_module(work, tmp_path, monkeypatch, capsys):
    data = pytest.importorskip("aar.data")
    if not hasattr(data, "tokenize_folder"):
        pytest.skip("aar.data has no tokenize_folder")
    seen = []

    def fake(input_dir, output_dir, model, *, num_proc=1, ray_address=None, progress=True):
        seen.append((input_dir, output_dir, model, num_proc, ray_address, progress))
        return SimpleNamespace(rows=2, errors=0, shards=1, skipped_shards=0, output_dir=output_dir,
                               manifest=output_dir / "manifest.json")

    monkeypatch.setattr(data, "tokenize_folder", fake)
    assert main(["tokenize", str(work), str(tmp_path), "--model", "m", "--num-proc", "3", "--progress"]) == 0
    assert main(["-q", "tokenize", str(work), str(tmp_path), "--ray"]) == 0
    assert main(["tokenize", str(work), str(tmp_path), "--ray", "ray://head:10001", "--quiet"]) == 0
    assert seen == [
        (work, tmp_path, "m", 3, None, True),
        (work, tmp_path, "qiuk6/AAR", 1, "auto", False),
        (work, tmp_path, "qiuk6/AAR", 1, "ray://head:10001", False),
    ]
    assert "2 file(s) in 1 shard(s)" in capsys.readouterr().out


# ------------------------------------------------------------------------------------- error paths
ERRORS = {
    # name: (arguments, exit status, part of the message); {w} is the work folder
    "missing audio": ("encode {w}/nope.wav {w}/o.codes --model {sat}", 1, "audio file not found"),
    "unreadable audio": ("encode {w}/garbage.wav {w}/o.codes --model {sat}", 1, "cannot read audio file"),
    "generator as tokenizer": ("encode {w}/tone.wav {w}/o.codes --model {aar}", 1, "is a generator (AAR)"),
    "codes named .wav": ("encode {w}/tone.wav {w}/o.wav --model {sat}", 2, "use .codes"),
    "missing model": ("encode {w}/tone.wav {w}/o.codes --model {w}/nothing", 1, "no such file or folder"),
    "uncached hub model": ("encode {w}/tone.wav {w}/o.codes --model someone/model", 1, "local cache"),
    "corrupt codes": ("decode {w}/garbage.codes {w}/o.wav --model {sat}", 1, "not an aar codes file"),
    "foreign codes": ("decode {w}/other.codes {w}/o.wav --model {sat}", 1, "--allow-mismatch"),
    "bad extension": ("decode {w}/other.codes {w}/o.mp3 --model {sat}", 2, "must end in one of"),
    "too many scales": ("decode {w}/other.codes {w}/o.wav --model {sat} --num-scales 17", 2, "[1, 16]"),
    "zero scales": ("decode {w}/other.codes {w}/o.wav --num-scales 0", 2, "integer >= 1"),
    "top-p": ("generate --clap {w}/clap.npy -o {w}/o.wav --top-p 1.5", 2, "(0, 1]"),
    "temperature": ("generate --clap {w}/clap.npy -o {w}/o.wav --temperature 0", 2, "number > 0"),
    "no condition": ("generate -o {w}/o.wav", 2, "one of the arguments --prompt --audio --clap"),
    "two conditions": ("generate --prompt a --clap {w}/clap.npy -o {w}/o.wav", 2, "not allowed with"),
    "clap not npy": ("generate --clap {w}/tone.wav -o {w}/o.wav --model {w}/gen", 1, "numpy.save"),
    "missing reference": ("generate --audio {w}/nope.wav -o {w}/o.wav --model {w}/nothing", 1, "not found"),
    "unreadable reference": ("generate --audio {w}/garbage.wav -o {w}/o.wav", 1, "cannot read audio"),
    "clap shape": ("generate --clap {w}/clap3.npy -o {w}/o.wav --model {w}/gen", 1, "(512,) or (B, 512)"),
    "prompt without clap": ("generate --prompt hi -o {w}/o.wav --model {w}/gen", 1, ""),
    "int8 off the cpu": ("--device meta generate --clap {w}/clap.npy -o {w}/o.wav --model {w}/gen "
                         "--precision int8", 1, "CPU only"),
    "pth without tokenizer": ("generate --clap {w}/clap.npy -o {w}/o.wav --model {aar}", 2, "--tokenizer"),
    "convert without tokenizer": ("convert {aar} {w}/conv", 2, "--tokenizer"),
    "convert missing": ("convert {w}/nope.pth {w}/conv", 1, "checkpoint not found"),
    "info missing": ("info {w}/nothing", 1, "no such file or folder"),
    "info non-codes file": ("info {w}/tone.wav", 1, "not an aar codes file"),
    "tokenize missing": ("tokenize {w}/nothing {w}/tok --model {sat}", 1, "input folder not found"),
    "bad device": ("--device gpu7 info {sat}", 2, "--device"),
    "unknown command": ("transcode x", 2, "invalid choice"),
    "no command": ("", 2, "required: COMMAND"),
}
#: Run as real processes: a failure while working (exit 1), a usage error (exit 2), and a missing
#: optional dependency (no stand-in module can leak into a fresh process). Each costs a Python
#: start-up; the rest run in-process through ``main``, which is what the command calls.
IN_SUBPROCESS = ("missing audio", "top-p", "prompt without clap")


def _check_one_line(status, stderr, name, work):
    _, expected_status, fragment = ERRORS[name]
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    assert status == expected_status, stderr
    assert len(lines) == 1 and lines[0].startswith("aar: error: "), stderr
    assert fragment in lines[0]
    assert not any((work / name).exists() for name in ("o.wav", "o.codes", "conv", "tok"))


def _argv(name, work) -> list[str]:
    return ERRORS[name][0].format(w=work, sat=SAT_PTH, aar=AAR_PTH).split()


@pytest.fixture(scope="module")
def error_runs(work, tmp_path_factory):
    """The subprocess error cases, run in parallel."""
    env = {"HF_HOME": str(tmp_path_factory.mktemp("hf_home"))}  # an empty Hub cache
    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = {name: pool.submit(lambda n: finish(aar_cmd(*_argv(n, work), env=env)), name)
                for name in IN_SUBPROCESS}
        return {name: run.result() for name, run in runs.items()}


@pytest.mark.parametrize("name", IN_SUBPROCESS)
def test_errors_are_one_line(work, error_runs, name):
    result = error_runs[name]
    _check_one_line(result.returncode, result.stderr, name, work)


@pytest.mark.parametrize("name", [name for name in ERRORS if name not in IN_SUBPROCESS])
def test_errors_are_one_line_in_process(work, capsys, name):
    status = main(_argv(name, work))
    _check_one_line(status, capsys.readouterr().err, name, work)


def test_debug_mode_raises(work, monkeypatch, capsys):
    monkeypatch.setenv("AAR_DEBUG", "1")
    with pytest.raises(CodesFileError, match="not an aar codes file"):
        main(["decode", str(work / "garbage.codes"), str(work / "o.wav")])
    assert main(["decode", str(work / "garbage.codes"), str(work / "o.mp3")]) == 2  # usage: still one line
    assert capsys.readouterr().err.count("\n") == 1
