"""The README's snippets run as written, against fixture checkpoints laid out as ``qiuk6/AAR``."""

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import AAR_PTH, SAT_PTH
from official_layout import populate_hub_cache
from stand_ins import stand_in_clap

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """The fixture checkpoints under the released names, in a Hub cache the snippets read offline."""
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hub"
    populate_hub_cache(cache, "qiuk6/AAR", {"SAT_d128_lat128.pth": SAT_PTH, "AAR_d16_bs2048.pth": AAR_PTH})
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_python_snippets(hub_cache, tmp_path, monkeypatch):
    import aar.conditioning.clap

    noise = 0.1 * np.random.default_rng(0).standard_normal((3 * 44100, 2))  # soundfile: (frames, C)
    sf.write(tmp_path / "song.flac", noise.astype("float32"), 44100)  # the quick start's input file
    monkeypatch.chdir(tmp_path)

    stand_in = classmethod(lambda cls, **kw: stand_in_clap())
    monkeypatch.setattr(aar.conditioning.clap.ClapEncoder, "from_pretrained", stand_in)
    blocks = _blocks("python")
    assert len(blocks) >= 2
    namespace: dict = {}
    exec(compile(blocks[0], "README.md[quick start]", "exec"), namespace)
    codes, audio = namespace["codes"], namespace["audio"]
    assert len(codes) == 16 and tuple(codes[0].shape) == (1, 3, 1) and tuple(codes[-1].shape) == (1, 3, 75)
    assert codes.length == 72000 and codes.sample_rate == 44100
    assert namespace["preview"].shape == (1, 1, 72000)
    assert audio.shape == (1, 1, 24000) and torch.isfinite(audio).all()
    exec(compile(blocks[1], "README.md[clap]", "exec"), namespace)
    assert namespace["audio"].shape == (1, 1, 24000)


def test_command_line_snippet(hub_cache, tmp_path, monkeypatch, capsys):
    """Every command of the CLI block runs, in this process through ``aar.cli.main`` (the entry point
    itself is tested in a subprocess in test_cli.py). The text prompt needs CLAP weights, so it uses a
    vector; ``--num-proc`` runs in one process here (test_data.py checks that workers give the same
    shards)."""
    from aar.cli import main

    work = tmp_path / "work"
    work.mkdir()
    rng = np.random.default_rng(0)
    sf.write(work / "song.flac", (0.1 * rng.standard_normal((2 * 44100, 2))).astype("float32"), 44100)
    np.save(work / "emb.npy", (v := rng.standard_normal(512).astype("float32")) / np.linalg.norm(v))
    (work / "AAR_d16_bs2048.pth").write_bytes(AAR_PTH.read_bytes())
    (work / "SAT_d128_lat128.pth").write_bytes(SAT_PTH.read_bytes())
    (work / "corpus").mkdir()
    (work / "corpus" / "song.flac").write_bytes((work / "song.flac").read_bytes())
    commands = [line.split("#")[0].strip() for line in _blocks("bash")[1].splitlines()]
    commands = [c for c in commands if c]
    assert commands and all(c.startswith("aar ") for c in commands)
    monkeypatch.chdir(work)
    for command in commands:
        args = shlex.split(command)[1:]
        if "--prompt" in args:
            i = args.index("--prompt")
            args[i : i + 2] = ["--clap", "emb.npy"]
        if args[0] == "vary":  # conditioned on the clip's own CLAP embedding: needs CLAP weights
            args += ["--clap", "emb.npy"]
        if "--num-proc" in args:
            args[args.index("--num-proc") + 1] = "1"
        status = main(["--quiet", *args])
        assert status == 0, f"{command}: {capsys.readouterr().err}"
    assert sf.info(str(work / "song.wav")).frames == 2 * 24000
    assert sf.info(str(work / "long.wav")).frames == 3 * 24000
    assert sorted(p.name for p in work.glob("out_*.wav")) == [f"out_{j}.wav" for j in range(4)]
    assert (work / "variation.wav").is_file() and (work / "tokens").is_dir()
    assert (work / "aar-d16" / "config.json").is_file() and (work / "rain.wav").is_file()
    assert capsys.readouterr().err == ""  # --quiet: no progress bars, no warnings
