"""The ``aar`` command in the corners: refusals before loading, folders, overwrites, pipes, warnings."""

import argparse
import builtins
import re

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import AAR_PTH, SAT_PTH

from aar.cli import main, program
from aar.cli.commands import convert_checkpoint
from aar.errors import TorchVersionError
from aar.loading import hub
from aar.loading.official import safe_numpy_globals


def _line(capsys, kind="error") -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"aar: {kind}: "), err
    return lines[0]


# ------------------------------------------------------------------------------------------ convert
def test_convert_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["convert", str(AAR_PTH), str(out), "--tokenizer", str(SAT_PTH), "-q"]) == 0
    before = (out / hub.WEIGHTS_NAME).read_bytes()
    assert main(["convert", str(SAT_PTH), str(out), "-q"]) == 1
    assert re.search(r"model is not empty \(it holds config\.json, model\.safetensors, tokenizer\): "
                     r"pass --force", _line(capsys))
    assert (out / hub.WEIGHTS_NAME).read_bytes() == before  # untouched
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="todo.txt"):
        convert_checkpoint(SAT_PTH, tmp_path / "notes")


def test_convert_force_replaces_the_model_and_nothing_else(tmp_path, official_tokenizer):
    out = tmp_path / "model"
    assert main(["convert", str(AAR_PTH), str(out), "--tokenizer", str(SAT_PTH), "-q"]) == 0
    (out / "README.md").write_text("kept")
    assert main(["convert", str(SAT_PTH), str(out), "--force", "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    from aar import SATTokenizer

    assert SATTokenizer.from_pretrained(out).fingerprint() == official_tokenizer.fingerprint()


def test_convert_on_a_native_folder_says_it_is_one(tmp_path, capsys):
    convert_checkpoint(SAT_PTH, tmp_path / "native")
    assert main(["convert", str(tmp_path / "native"), str(tmp_path / "again")]) == 2
    line = _line(capsys)
    assert "is a folder; expected an official checkpoint" in line and "already native" in line
    assert "not found" not in line


# ------------------------------------------------------------------------------- paths and devices
def test_encode_of_a_folder_says_folder(tmp_path, capsys):
    assert main(["encode", str(tmp_path), str(tmp_path / "x.codes")]) == 2
    line = _line(capsys)
    assert f"{tmp_path} is a folder; expected an audio file" in line and "not found" not in line


def test_an_output_that_is_a_folder_is_named_without_the_temporary_file(tmp_path, capsys):
    codes = tmp_path / "x.codes"
    sf.write(tmp_path / "in.wav", np.zeros(2400, np.float32), 24000)
    assert main(["encode", str(tmp_path / "in.wav"), str(codes), "--model", str(SAT_PTH), "-q"]) == 0
    (tmp_path / "out.wav").mkdir()
    assert main(["decode", str(codes), str(tmp_path / "out.wav"), "--model", str(SAT_PTH), "-q"]) == 1
    line = _line(capsys)
    assert line == f"aar: error: cannot write a file here: it is a folder: {tmp_path / 'out.wav'}"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_without_a_gpu_is_a_usage_error_before_loading(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(hub, "download", lambda *a, **k: pytest.fail("looked a model up"))
    status = main(["encode", str(tmp_path / "in.wav"), str(tmp_path / "x.codes"), "--device", "cuda"])
    assert status == 2
    assert "'cuda': no CUDA GPU is available" in _line(capsys)


def test_subtype_and_extension_are_checked_before_loading(tmp_path, capsys):
    status = main(["decode", str(tmp_path / "missing.codes"), str(tmp_path / "o.ogg"), "--subtype", "PCM_16"])
    assert status == 2 and "--subtype PCM_16 does not fit o.ogg: OGG takes VORBIS" in _line(capsys)


def test_decode_writes_pcm16_and_warns_in_one_line_when_it_clips(tmp_path, capsys, monkeypatch):
    sf.write(tmp_path / "in.wav", np.zeros(2400, np.float32), 24000)
    codes = tmp_path / "x.codes"
    assert main(["encode", str(tmp_path / "in.wav"), str(codes), "--model", str(SAT_PTH), "-q"]) == 0
    from aar import SATTokenizer

    loud = lambda self, *a, **k: torch.full((1, 1, 2400), 1.5)  # noqa: E731
    monkeypatch.setattr(SATTokenizer, "decode", loud)
    out = tmp_path / "o.wav"
    assert main(["decode", str(codes), str(out), "--model", str(SAT_PTH), "--subtype", "PCM_16", "-q"]) == 0
    assert sf.info(str(out)).subtype == "PCM_16"
    assert "o.wav: peak 1.5 lies outside [-1, 1]; WAV PCM_16 clips it" in _line(capsys, "warning")


def test_a_closed_pipe_ends_quietly(monkeypatch, capsys):
    def closed(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(builtins, "print", closed)
    assert main(["info", str(SAT_PTH)]) == program.EXIT_BROKEN_PIPE
    monkeypatch.undo()
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------ torch
def test_an_old_torch_is_named_as_the_cause(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.4.1+cpu")
    with pytest.raises(TorchVersionError, match=r"needs torch >= 2\.6, but torch 2\.4\.1\+cpu is installed"):
        safe_numpy_globals()
    from aar import SATTokenizer

    with pytest.raises(TorchVersionError):
        SATTokenizer.from_pretrained(SAT_PTH)
    assert not issubclass(TorchVersionError, ValueError)  # not a CheckpointError: the file is fine


def test_device_parser_accepts_the_cpu():
    assert program._device("cpu") == torch.device("cpu")
    with pytest.raises(argparse.ArgumentTypeError, match="expected a device"):
        program._device("gpu0")


# ------------------------------------------------------------------------------- progress, precision
def _two_windows(tmp_path):
    sf.write(tmp_path / "two.wav", np.zeros(24001, np.float32), 24000)
    return str(tmp_path / "two.wav")


def test_progress_bars_stay_out_of_logs_unless_asked(tmp_path, capsys, tiny_tokenizer):
    tiny_tokenizer.save_pretrained(tmp_path / "tiny")
    args = ["encode", _two_windows(tmp_path), str(tmp_path / "x.codes"), "--model", str(tmp_path / "tiny"),
            "--batch-size", "1"]
    assert main(args) == 0  # stderr is captured here: not a terminal
    assert capsys.readouterr().err == ""
    assert main([*args, "--progress"]) == 0
    assert "encode" in capsys.readouterr().err


def test_precision_auto_says_what_it_chose(tmp_path, capsys):
    from aar.precision.policy import auto_precision

    v = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    np.save(tmp_path / "clap.npy", v)
    args = ["generate", "--clap", str(tmp_path / "clap.npy"), "-o", str(tmp_path / "o.wav"),
            "--model", str(AAR_PTH), "--tokenizer", str(SAT_PTH), "--seed", "0"]
    assert main([*args, "--precision", "auto"]) == 0
    chosen = auto_precision("cpu")
    assert f"precision: {chosen} (chosen by --precision auto for cpu)" in capsys.readouterr().out.splitlines()
    assert main([*args, "--precision", "auto", "--quiet"]) == 0
    assert capsys.readouterr().out == ""


def test_the_generator_exposes_its_precision():
    from conftest import tiny_generator

    gen = tiny_generator()
    assert gen.precision == "fp32"
    assert gen.bfloat16().precision == "bf16"


def test_several_samples_show_one_bar_not_nested_ones(tmp_path, monkeypatch):
    import tqdm.auto

    made, real = [], tqdm.auto.tqdm

    def recording(*args, **kwargs):
        if not kwargs.get("disable"):
            made.append(kwargs.get("desc"))
        return real(*args, **{**kwargs, "disable": True})

    monkeypatch.setattr(tqdm.auto, "tqdm", recording)
    v = np.random.default_rng(1).standard_normal(512).astype(np.float32)
    np.save(tmp_path / "clap.npy", v)
    sf.write(tmp_path / "in.wav", np.zeros(12000, np.float32), 24000)
    assert main(["vary", str(tmp_path / "in.wav"), "-o", str(tmp_path / "o.wav"), "--keep-scales", "8",
                 "--clap", str(tmp_path / "clap.npy"), "--model", str(AAR_PTH), "--tokenizer", str(SAT_PTH),
                 "--num-samples", "2", "--progress"]) == 0
    assert made == ["vary"]
