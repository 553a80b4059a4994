"""Typed errors: the missing CLAP extra first, checkpoints of the wrong kind named, a missing tokenizer."""

import json
import pickle
import re
import runpy
import sys
import types
from pathlib import Path

import numpy
import pytest
import soundfile
import torch
from conftest import AAR_PTH, SAT_PTH

from aar import AARGenerator, ClapEncoder, SATTokenizer
from aar.cli import main
from aar.cli.commands import convert_checkpoint
from aar.conditioning.backends import read_laion_state_dict
from aar.errors import (
    AARError,
    CheckpointError,
    HubUnreachableError,
    MissingExtraError,
    MissingTokenizerError,
    UploadError,
    WrongModelKindError,
    pip_command,
    require_extra,
)
from aar.loading import hub

CLAP_PIP = pip_command("clap")
EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.fixture
def no_network(monkeypatch):
    """Any Hub lookup fails the test: what must fail first has to fail before one."""

    def refuse(repo_id, filename, hub_kwargs):
        raise AssertionError(f"looked up {filename} of {repo_id} on the Hub")

    monkeypatch.setattr(hub, "download", refuse)


@pytest.fixture
def without_clap(monkeypatch, no_network):
    """Neither CLAP backend's package importable (a None entry makes import and find_spec fail)."""
    monkeypatch.setitem(sys.modules, "laion_clap", None)
    monkeypatch.setitem(sys.modules, "transformers", None)


def _one_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aar: error: "), lines
    return lines[0]


# --------------------------------------------------------------------------------------- the types
@pytest.mark.parametrize(
    "error, builtin",
    [(CheckpointError, ValueError), (WrongModelKindError, CheckpointError),
     (MissingTokenizerError, ValueError), (HubUnreachableError, ConnectionError),
     (MissingExtraError, ImportError), (UploadError, ValueError)],
)
def test_each_error_keeps_its_builtin_and_the_common_base(error, builtin):
    assert issubclass(error, builtin) and issubclass(error, AARError)


@pytest.mark.parametrize(
    "err",
    [CheckpointError("bad keys", source="m.pth"), WrongModelKindError("m.pth", "aar", "sat"),
     MissingTokenizerError("a.pth"), HubUnreachableError("o/r", "config.json", "http://x", "refused"),
     MissingExtraError("clap", "laion_clap", "CLAP"), UploadError("/tmp/a.wav", "the file is empty")],
    ids=lambda err: type(err).__name__,
)
def test_errors_survive_pickling(err):
    """Worker processes (aar tokenize --num-proc) send errors back pickled."""
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err) and str(back) == str(err) and back.__dict__ == err.__dict__
    if isinstance(err, ImportError):
        assert back.name == err.name == "laion_clap"


def test_missing_extra_names_the_pip_command():
    err = MissingExtraError("data", "datasets", "aar tokenize")
    assert str(err) == ("aar tokenize needs the 'datasets' package, which is not installed; install it "
                        'with: ' + pip_command("data"))
    assert (err.extra, err.package, err.name) == ("data", "datasets", "datasets")


def test_require_extra_looks_up_without_importing(monkeypatch):
    require_extra("json", "x", "y")  # installed
    monkeypatch.setitem(sys.modules, "stand_in_without_spec", types.ModuleType("stand_in_without_spec"))
    require_extra("stand_in_without_spec", "x", "y")  # a stand-in module counts as installed
    with pytest.raises(MissingExtraError, match=re.escape(CLAP_PIP)):
        require_extra("surely_not_installed_pkg", "clap", "z")
    monkeypatch.setitem(sys.modules, "json", None)
    with pytest.raises(MissingExtraError):
        require_extra("json", "x", "y")


# ------------------------------------------------------------------- the missing CLAP extra, first
@pytest.mark.parametrize("backend", ["laion-clap", "transformers"])
def test_clap_encoder_reports_the_extra_before_any_lookup(without_clap, backend):
    with pytest.raises(MissingExtraError) as info:
        ClapEncoder.from_pretrained(backend=backend)  # the default: a Hub id
    assert CLAP_PIP in str(info.value) and info.value.extra == "clap"
    assert "\n" not in str(info.value)


def test_generate_with_a_prompt_reports_the_extra_first(without_clap, official_generator):
    with pytest.raises(MissingExtraError, match=re.escape(CLAP_PIP)):
        official_generator.generate_codes(prompt="rain on a tin roof", seed=0)
    assert official_generator.clap_encoder is None


@pytest.mark.parametrize("command", ["generate", "vary"])
def test_cli_reports_the_extra_before_the_model_is_looked_up(without_clap, tmp_path, capsys, command):
    soundfile.write(tmp_path / "in.wav", torch.zeros(2400).numpy(), 24000)
    args = (["generate", "--prompt", "hi"] if command == "generate"
            else ["vary", str(tmp_path / "in.wav"), "--keep-scales", "4"])
    status = main([*args, "-o", str(tmp_path / "o.wav"), "--model", "someone/not-cached"])
    line = _one_line(capsys)
    assert status == 1 and CLAP_PIP in line and "someone/not-cached" not in line
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("script, args", [("text_to_audio.py", ["a prompt"]), ("variation.py", [])])
def test_examples_report_the_extra_before_the_model_is_looked_up(without_clap, script, args):
    example = runpy.run_path(str(EXAMPLES / script))
    with pytest.raises(MissingExtraError, match=re.escape(CLAP_PIP)):
        example["main"]([*args, "--model", "someone/not-cached"])


# ------------------------------------------------------------------------------------- wrong kinds
def _clap_file(path):
    state = {"module.audio_branch.weight": torch.ones(2, 2), "module.text_branch.bias": torch.ones(2)}
    torch.save({"epoch": 3, "state_dict": state}, path)
    return path


def _folder(path, model_type):
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": model_type, "hidden_size": 8}))
    return path


@pytest.mark.parametrize("loader, wanted", [(SATTokenizer, "sat"), (AARGenerator, "aar")])
def test_clap_checkpoint_given_to_a_model(tmp_path, loader, wanted):
    clap = _clap_file(tmp_path / "clap.pt")
    with pytest.raises(WrongModelKindError, match=r"clap.pt is a CLAP checkpoint, but a .* wanted") as info:
        loader.from_pretrained(clap, tokenizer=SAT_PTH) if wanted == "aar" else loader.from_pretrained(clap)
    assert (info.value.found, info.value.wanted, info.value.source) == ("clap", (wanted,), str(clap))
    folder = _folder(tmp_path / "hf-clap", "clap")  # what transformers writes for a ClapModel
    with pytest.raises(WrongModelKindError, match="hf-clap is a CLAP checkpoint") as info:
        loader.from_pretrained(folder)
    assert info.value.found == "clap"


@pytest.mark.parametrize("loader", [SATTokenizer, AARGenerator])
def test_folder_of_an_unknown_kind_names_its_model_type(tmp_path, loader):
    folder = _folder(tmp_path / "vocoder", "hifigan")
    with pytest.raises(WrongModelKindError, match=r"not a checkpoint of any kind aar knows.*'hifigan'") as i:
        loader.from_pretrained(folder)
    assert i.value.found is None and str(folder / "config.json") in str(i.value)


@pytest.mark.parametrize("official, found", [(SAT_PTH, "sat"), (AAR_PTH, "aar")])
def test_tokenizer_or_generator_file_given_to_clap(tmp_path, monkeypatch, official, found):
    with pytest.raises(WrongModelKindError, match=r"is a (tokenizer|generator) .*, but a CLAP"):
        read_laion_state_dict(official)

    class Module:  # just enough of laion_clap for the backend to reach the weights
        def __init__(self, **kwargs):
            self.model = torch.nn.Linear(1, 1)

    monkeypatch.setitem(sys.modules, "laion_clap", types.SimpleNamespace(CLAP_Module=Module))
    with pytest.raises(WrongModelKindError) as info:
        ClapEncoder.from_pretrained(official)
    assert (info.value.found, info.value.wanted) == (found, ("clap",))


@pytest.mark.parametrize("kind", ["sat", "aar"])
def test_native_folder_given_to_the_transformers_backend(tmp_path, official_generator, kind):
    pytest.importorskip("transformers")
    model = official_generator.tokenizer if kind == "sat" else official_generator
    folder = model.save_pretrained(tmp_path / kind)
    with pytest.raises(WrongModelKindError, match="but a CLAP checkpoint was wanted") as info:
        ClapEncoder.from_pretrained(folder, backend="transformers")
    assert info.value.found == kind


def test_cli_names_the_kind(tmp_path, capsys, official_generator):
    clap = _clap_file(tmp_path / "clap.pt")
    assert main(["info", str(clap)]) == 1
    line = _one_line(capsys)
    assert "is a CLAP checkpoint, but a tokenizer (SAT) checkpoint or a generator (AAR) checkpoint" in line
    folder = official_generator.tokenizer.save_pretrained(tmp_path / "sat")
    numpy.save(tmp_path / "clap.npy", numpy.ones(512, numpy.float32) / 512**0.5)
    out = str(tmp_path / "o.wav")
    argv = ["generate", "--clap", str(tmp_path / "clap.npy"), "-o", out, "--model", str(folder)]
    assert main(argv) == 1
    assert "is a tokenizer (SAT) checkpoint, but a generator (AAR) checkpoint was wanted" in _one_line(capsys)


# -------------------------------------------------------------------------------- missing tokenizer
def test_official_generator_alone_needs_its_tokenizer(tmp_path, capsys):
    alone = tmp_path / "AAR_alone.pth"
    alone.write_bytes(AAR_PTH.read_bytes())
    with pytest.raises(MissingTokenizerError, match="pass tokenizer=") as info:
        AARGenerator.from_pretrained(alone)
    assert info.value.source == str(alone)
    with pytest.raises(MissingTokenizerError):
        convert_checkpoint(alone, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert main(["info", str(alone)]) == 2
    assert "pass --tokenizer" in _one_line(capsys)

