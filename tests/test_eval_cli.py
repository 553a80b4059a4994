"""``aar eval``: the command on folders of real files, driven in-process (one subprocess smoke)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import AAR_PTH, SAT_PTH, TINY_SAT, same_scores
from eval_stand_ins import TinyClassifier, TinyExtractor, write_eval_folder
from stand_ins import stand_in_clap

from aar import SATTokenizer, metrics
from aar.audio import load_audio, resample, to_mono
from aar.cli import eval_commands as command
from aar.cli import main
from aar.cli.commands import UsageError
from aar.conditioning.clap import ClapEncoder

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalcli")
    write_eval_folder(root / "clips")
    torch.manual_seed(0)
    SATTokenizer(TINY_SAT).eval().save_pretrained(root / "tiny")
    return root


@pytest.fixture
def stand_ins(monkeypatch):
    """Spec loaders that give the test extractor and classifier, and a stand-in CLAP."""
    made = {}

    def extractor(spec, args):
        made["extractor"] = TinyExtractor()
        return made["extractor"]

    monkeypatch.setattr(command, "load_extractor", extractor)
    monkeypatch.setattr(command, "load_classifier", lambda spec, args: TinyClassifier())
    monkeypatch.setattr(ClapEncoder, "from_pretrained", classmethod(lambda cls, *a, **k: stand_in_clap()))
    return made


def test_reconstruct_writes_json_and_table(work, capsys):
    out = work / "reports" / "recon.json"
    rc = main(["eval", "reconstruct", str(work / "clips"), "--model", str(work / "tiny"), "--json", str(out),
               "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    data = json.loads(out.read_text())
    assert {"mel_distance", "stft_distance", "si_sdr", "files", "errors", "windows"} <= data.keys()
    assert [e["path"].rsplit("/", 1)[-1] for e in data["errors"]] == ["broken.wav", "blip.flac"]
    assert len(data["files"]) == 5 and "2 file(s) skipped" in captured.err

    # the JSON holds the library metric of each window: check one file, one window
    tok = SATTokenizer.from_pretrained(work / "tiny")
    row = next(f for f in data["files"] if f["path"].endswith("music_22k.wav"))
    wav, rate = load_audio(work / "clips" / "music_22k.wav")
    ref, est = resample(to_mono(wav[None]), rate, 24_000), tok.decode(tok.encode(wav, rate))
    assert row["windows"] == 1
    assert row["mel_distance"] == pytest.approx(float(metrics.mel_distance(ref, est)), rel=1e-5)
    assert row["stft_distance"] == pytest.approx(float(metrics.stft_distance(ref, est)), rel=1e-5)
    assert row["si_sdr"] == pytest.approx(float(metrics.si_sdr(ref, est)), rel=1e-5)

    lines = captured.out.splitlines()
    assert lines[0].split() == ["file", "seconds", "windows", "mel_distance", "stft_distance", "si_sdr"]
    assert len(lines) == 8 and lines[-2].split()[0] == "all" and lines[-1].startswith("protocol paper: ")
    assert lines[-2].split()[3] == f"{data['mel_distance']:.4f}"
    assert data["protocol"]["mel"] == "official" and data["codes_fingerprint"] != data["fingerprint"]
    assert [line.split()[0] for line in lines[1:-2]] == [
        "music_22k.wav", "music_44k_stereo.wav", "speech_16k.wav", "speech_24k.wav", "speech_8k.wav"]


def test_reconstruct_fails_only_when_every_file_fails(work, tmp_path, capsys):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.wav").write_bytes(b"not audio")
    rc = main(["eval", "reconstruct", str(tmp_path / "bad"), "--model", str(work / "tiny"), "--quiet"])
    assert rc == 1 and "no file could be scored" in capsys.readouterr().err
    assert main(["eval", "reconstruct", str(tmp_path / "none"), "--model", str(work / "tiny")]) == 1
    assert "audio folder not found" in capsys.readouterr().err


def test_reconstruct_with_extractor_reports_fad(work, stand_ins, capsys):
    rc = main(["eval", "reconstruct", str(work / "clips" / "sub"), "--model", str(work / "tiny"), "-q"])
    assert rc == 1  # the only file there is too short
    capsys.readouterr()
    rc = main(["eval", "reconstruct", str(work / "clips"), "--model", str(work / "tiny"), "-q",
               "--extractor", "clap"])
    out = capsys.readouterr().out
    assert rc == 0 and "FAD (tiny-bands, originals vs reconstructions):" in out
    assert stand_ins["extractor"].calls == 2 * 9  # each scored window, original and reconstruction
    single = work / "single"
    single.mkdir(exist_ok=True)
    (single / "a.wav").write_bytes((work / "clips" / "music_22k.wav").read_bytes())
    rc = main(["eval", "reconstruct", str(single), "--model", str(work / "tiny"), "-q", "--extractor", "clap",
               "--json", str(work / "one.json")])
    assert rc == 0 and "FAD: unavailable (FAD needs at least 2 scored windows)" in capsys.readouterr().out
    data = json.loads((work / "one.json").read_text())
    assert data["fad"] is None and data["windows"] == 1 and data["mel_distance"] > 0


def test_compare_a_folder_with_itself_is_zero_and_uses_the_cache(work, stand_ins, tmp_path, capsys):
    args = ["eval", "compare", str(work / "clips"), str(work / "clips"), "--extractor", "vggish:x",
            "--classifier", "panns:y", "--cache", str(tmp_path / "cache"), "--json", str(tmp_path / "c.json"),
            "-q"]
    assert main(args) == 0
    first = stand_ins["extractor"].calls
    data = json.loads((tmp_path / "c.json").read_text())
    # KL(p || p) is just below 0: audioldm_eval adds 1e-6 to the estimate's probabilities
    assert data["fad"] == pytest.approx(0, abs=1e-9) and -1e-5 < data["kl"] < 0
    assert data["protocol"]["name"] == "paper" and data["not_audio"] == []
    assert data["files_a"] == 6 and data["kl_pairs"] == 6
    assert "FAD (tiny-bands): 0.0000" in capsys.readouterr().out
    assert first > 0
    assert main(args) == 0
    assert stand_ins["extractor"].calls == 0  # the fresh extractor of the re-run was never called
    assert json.loads((tmp_path / "c.json").read_text())["fad"] == data["fad"]


def test_compare_without_cache_or_classifier(work, stand_ins, tmp_path, capsys):
    clips = str(work / "clips")
    rc = main(["eval", "compare", clips, clips, "--extractor", "clap", "--no-cache"])
    captured = capsys.readouterr()
    assert rc == 0 and "FAD (tiny-bands): 0.0000  [6 vs 6 file(s)]" in captured.out
    assert "KL: unavailable (no classifier given)" in captured.out


@pytest.mark.parametrize("spec, message", [("foo", "must be one of"), ("vggish", "needs a checkpoint")])
def test_bad_extractor_spec_is_a_usage_error(work, spec, message, capsys):
    rc = main(["eval", "compare", str(work / "clips"), str(work / "clips"), "--extractor", spec])
    assert rc == 2 and message in capsys.readouterr().err


def test_generate_sweep_writes_json_and_png(work, stand_ins, tmp_path, capsys):
    sources = tmp_path / "sources"
    sources.mkdir()
    for name in ("speech_16k.wav", "music_22k.wav"):
        (sources / name).write_bytes((work / "clips" / name).read_bytes())
    out = tmp_path / "gen"
    rc = main(["eval", "generate", "--model", str(AAR_PTH), "--tokenizer", str(SAT_PTH),
               "--reference", str(work / "clips"), "--clap-from", str(sources), "-o", str(out),
               "--cfg", "1", "3", "--seed", "5", "--num-samples", "5", "--extractor", "clap",
               "--classifier", "panns:x", "--no-cache", "-q"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    data = json.loads((out / "report.json").read_text())
    assert [p["cfg"] for p in data["points"]] == [1.0, 3.0] and data["seed"] == 5
    assert all(p["kl"] is not None and p["inception_score"] >= 1 and p["fad"] > 0 for p in data["points"])
    assert len(list((out / "cfg_3").iterdir())) == 10  # 2 conditions x 5: enough for ISc's 10 splits
    assert (out / "guidance.png").read_bytes()[:4] == b"\x89PNG"
    header = ["cfg", "clips", "FAD", "ISc", "ISc_std", "KL", "KL_sigmoid"]
    assert captured.out.splitlines()[0].split() == header
    assert captured.out.splitlines()[-1].startswith("protocol paper: ")

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# comment\na dog barks\n\nrain on a roof\n")
    rc = main(["eval", "generate", "--model", str(AAR_PTH), "--tokenizer", str(SAT_PTH),
               "--reference", str(work / "clips"), "--prompts", str(prompts), "-o", str(tmp_path / "p"),
               "--extractor", "clap", "--no-cache", "-q", "--json", str(tmp_path / "p.json")])
    assert rc == 0
    point = json.loads((tmp_path / "p.json").read_text())["points"][0]
    assert point["cfg"] == 4.0 and point["samples"] == 2 and point["inception_score"] is None
    assert point["kl"] is None and (tmp_path / "p" / "guidance.png").is_file()


def test_generate_from_precomputed_clap_vectors(work, stand_ins, tmp_path, monkeypatch, capsys):
    """--clap-vectors: a matrix file or a folder of vectors; no CLAP model is loaded."""
    import numpy as np

    def no_clap(*args, **kwargs):
        raise AssertionError("CLAP must not be loaded with --clap-vectors")

    monkeypatch.setattr(ClapEncoder, "from_pretrained", classmethod(no_clap))
    clap = torch.randn(2, 512, generator=torch.Generator().manual_seed(4)).numpy()
    np.save(tmp_path / "clap.npy", clap)
    folder = tmp_path / "vectors"
    folder.mkdir()
    for i, row in enumerate(clap):
        torch.save(torch.from_numpy(row), folder / f"{i}.pt")
    reports = []
    for source in (tmp_path / "clap.npy", folder):
        out = tmp_path / f"gen_{source.stem}"
        rc = main(["eval", "generate", "--model", str(AAR_PTH), "--tokenizer", str(SAT_PTH),
                   "--reference", str(work / "clips"), "--clap-vectors", str(source), "-o", str(out),
                   "--extractor", "clap", "--no-cache", "-q", "--seed", "3"])
        assert rc == 0, capsys.readouterr().err
        reports.append(json.loads((out / "report.json").read_text()))
        assert reports[-1]["conditions"] == 2
    assert reports[0]["points"][0]["fad"] == reports[1]["points"][0]["fad"]  # the same conditions
    (folder / "2.npy").write_bytes(b"not numpy")
    assert main(["eval", "generate", "--model", str(AAR_PTH), "--tokenizer", str(SAT_PTH), "--reference",
                 str(work / "clips"), "--clap-vectors", str(folder), "-o", str(tmp_path / "x"),
                 "--extractor", "clap", "-q"]) != 0


def test_every_readable_extension_is_scored_and_the_rest_reported(work, stand_ins, tmp_path, capsys):
    """The folder listing uses aar.load_audio's extensions (.aiff included); other files are reported."""
    import soundfile as sf

    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("speech_16k.wav", "music_22k.wav"):
        (folder / name).write_bytes((work / "clips" / name).read_bytes())
    wav, rate = load_audio(work / "clips" / "speech_24k.wav")
    sf.write(folder / "speech.aiff", wav[0].numpy(), rate)
    (folder / "notes.txt").write_text("not audio")
    out = tmp_path / "c.json"
    assert main(["eval", "compare", str(folder), str(folder), "--extractor", "clap", "--no-cache", "-q",
                 "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["files_a"] == 3 and data["not_audio"] == [str(folder / "notes.txt")] * 2
    assert "left out, not audio by extension" in capsys.readouterr().err


def test_missing_network_weights_say_where_they_are(work, tmp_path, capsys):
    rc = main(["eval", "compare", str(work / "clips"), str(work / "clips"),
               "--extractor", f"vggish:{tmp_path / 'vggish-10086976.pth'}"])
    err = capsys.readouterr().err
    assert rc == 2 and "harritaylor/torchvggish" in err and "vggish-10086976.pth" in err
    with pytest.raises(UsageError, match="Cnn14_16k_mAP=0.438.pth.*Zenodo record 3987831"):
        command.load_classifier(f"panns:{tmp_path / 'Cnn14.pth'}", SimpleNamespace(device=None))


def test_ray_generation_uses_the_device_and_precision_asked_for(monkeypatch):
    """--ray: the runner's actors load the generator on --device in --precision (as a local run does)."""
    import contextlib

    import aar.data.runners as runners
    import aar.evaluation.distributed as distributed
    from aar.generator import AARGenerator

    seen = {}
    monkeypatch.setattr(runners, "ray_session", lambda address: contextlib.nullcontext())
    monkeypatch.setattr(distributed, "ray_runner", lambda *a, **k: seen.setdefault("runner", k))
    monkeypatch.setattr(distributed, "ray_embedder", lambda address: None)
    args = SimpleNamespace(ray="local", device="cpu", precision="bf16", batch_size=3)
    with command._engines(args, "model.pth", None):
        pass
    assert seen["runner"] == {"device": "cpu", "precision": "bf16", "batch_size": 3}
    monkeypatch.setattr(AARGenerator, "from_pretrained",
                        classmethod(lambda cls, model, **k: seen.setdefault("actor", k)))
    distributed.GeneratorActor("model.pth", None, {}, threads=torch.get_num_threads(), device="cpu",
                               precision="bf16")
    assert seen["actor"] == {"tokenizer": None, "device": "cpu", "precision": "bf16"}


def test_subprocess_smoke(work, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-m", "aar", "eval", "reconstruct", str(work / "clips"),
                           "--model", str(work / "tiny"), "--json", str(tmp_path / "r.json"), "-q"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-2].split()[0] == "all" and "2 file(s) skipped" in proc.stderr
    assert json.loads((tmp_path / "r.json").read_text())["windows"] == 9


def test_specs_load_the_named_networks(monkeypatch):
    calls = []

    def fake(name):
        return classmethod(lambda cls, where, device=None: calls.append((name, where, device)) or name)

    monkeypatch.setattr(metrics.VGGish, "from_pretrained", fake("vggish"))
    monkeypatch.setattr(metrics.PANNsCNN14, "from_pretrained", fake("panns"))
    monkeypatch.setattr(ClapEncoder, "from_pretrained", classmethod(lambda cls, *a, **k: stand_in_clap()))
    args = SimpleNamespace(device=torch.device("cpu"), clap_backend="laion-clap")
    assert command.load_extractor("vggish:/w/v.pth", args) == "vggish"
    assert command.load_extractor("panns:org/repo", args) == "panns"
    assert command.load_classifier("panns:C:/w/p.pth", args) == "panns"
    assert calls == [("vggish", "/w/v.pth", args.device), ("panns", "org/repo", args.device),
                     ("panns", "C:/w/p.pth", args.device)]
    clap = command.load_extractor("clap", args)
    assert isinstance(clap, metrics.ClapExtractor) and clap.dim == 512
    with pytest.raises(UsageError, match="panns:PATH"):
        command.load_classifier("vggish:x", args)


def test_readme_evaluation_lines_run(work, stand_ins, tmp_path, monkeypatch, capsys):
    """The README's "Evaluation in three lines", against the fixture checkpoints laid out as qiuk6/AAR."""
    import re
    import shlex
    from pathlib import Path

    import huggingface_hub.constants as hf_constants
    from official_layout import populate_hub_cache

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"## Evaluation in three lines\n\n```bash\n(.*?)```", readme, flags=re.S).group(1)
    lines = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    assert len(lines) == 3 and all(line.startswith("aar eval ") for line in lines)
    cache = tmp_path / "hub"
    populate_hub_cache(cache, "qiuk6/AAR", {"SAT_d128_lat128.pth": SAT_PTH, "AAR_d16_bs2048.pth": AAR_PTH})
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clips").mkdir()
    for name in ("speech_16k.wav", "music_22k.wav"):
        (tmp_path / "clips" / name).write_bytes((work / "clips" / name).read_bytes())
    for line in lines:
        assert main(["--quiet", *shlex.split(line)[1:]]) == 0, capsys.readouterr().err
    assert json.loads(Path("sat.json").read_text())["windows"] == 3  # 1.5 s and 1 s
    report = json.loads(Path("samples/report.json").read_text())
    assert [p["cfg"] for p in report["points"]] == [2.0, 4.0, 8.0] and Path("samples/guidance.png").is_file()
    assert "FAD (tiny-bands):" in capsys.readouterr().out
    assert any((tmp_path / "xdg" / "aar" / "embeddings").rglob("*.safetensors"))  # the default cache


@pytest.mark.slow
def test_compare_on_ray_equals_the_local_run(local_ray, work, stand_ins, tmp_path, capsys):
    pytest.importorskip("ray.data")
    import eval_stand_ins
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(eval_stand_ins)  # Ray workers cannot import the tests folder
    clips = str(work / "clips")
    base = ["eval", "compare", clips, clips, "--extractor", "clap", "--classifier", "panns:x", "-q"]
    assert main([*base, "--no-cache", "--json", str(tmp_path / "here.json")]) == 0
    on_ray = ["--cache", str(tmp_path / "c"), "--ray", "local", "--json", str(tmp_path / "ray.json")]
    assert main([*base, *on_ray]) == 0
    here, there = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("here", "ray"))
    assert there == here and stand_ins["extractor"].calls == 0  # the driver's copy never embedded
    assert any((tmp_path / "c").rglob("*.safetensors"))  # the workers filled the cache


@pytest.mark.slow
def test_reconstruct_on_ray_equals_the_local_run(local_ray, work, tmp_path, monkeypatch, capsys):
    pytest.importorskip("ray.data")
    few = tmp_path / "few"
    few.mkdir()
    for name in ("speech_24k.wav", "broken.wav", "music_22k.wav"):
        (few / name).write_bytes((work / "clips" / name).read_bytes())
    from aar.evaluation import distributed

    made = []
    monkeypatch.setattr(distributed, "ray_reconstructor",
                        lambda *a, _real=distributed.ray_reconstructor: made.append(a) or _real(*a))
    monkeypatch.chdir(tmp_path)  # a relative folder: the records name the files as the local run does
    base = ["eval", "reconstruct", "few", "--model", str(work / "tiny"), "-q"]
    assert main([*base, "--json", "here.json"]) == 0
    assert main([*base, "--ray", "local", "--json", "ray.json"]) == 0
    here, there = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("here", "ray"))
    # scores within 1e-6 (float sums can round differently in another process), the rest equal
    assert same_scores(there, here) and [e["path"] for e in here["errors"]] == ["few/broken.wav"]
    assert [f["path"] for f in there["files"]] == ["few/music_22k.wav", "few/speech_24k.wav"]
    assert made == [(str(work / "tiny"), "local")]  # the second run went through Ray
