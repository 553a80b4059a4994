"""``aar demo`` without Gradio: the command's one-line errors, the limits, uploads, and the engine's streams.

These run everywhere (Gradio not needed); ``test_demo_app.py`` drives the page itself.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import AAR_PTH, SAT_PTH

from aar.cli import main
from aar.demo import DemoEngine, DemoSettings, Knobs
from aar.demo.continuation import CROSSFADE, continue_audio
from aar.demo.engine import CONDITIONS, Preview, Result
from aar.demo.inpainting import inpaint_range
from aar.demo.uploads import read_clip, read_vector
from aar.errors import UploadError, pip_command
from aar.generation.sampling import make_generator

pytestmark = pytest.mark.usefixtures("one_thread")


def test_demo_without_the_extra_names_the_install_command(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # a None entry makes import and find_spec fail
    assert main(["demo", "--model", str(AAR_PTH), "--tokenizer", str(SAT_PTH)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["aar: error: aar demo needs the 'gradio' package, which is not installed; install it "
                   f"with: {pip_command('demo')}"]


@pytest.mark.parametrize("argv, message", [
    (["--port", "0"], "expected a port in [1, 65535], got '0'"),
    (["--max-clip-seconds", "-1"], "expected a number > 0, got '-1'"),
    (["--max-samples", "0"], "expected an integer >= 1, got '0'"),
])
def test_demo_refuses_bad_limits_as_usage_errors(argv, message, capsys):
    assert main(["demo", *argv]) == 2
    assert message in capsys.readouterr().err


def test_settings_default_to_the_loopback_address():
    settings = DemoSettings()
    assert (settings.host, settings.port) == ("127.0.0.1", 7860)
    with pytest.raises(ValueError, match="max_seconds must be a finite number > 0, got nan"):
        DemoSettings(max_seconds=float("nan"))


# ------------------------------------------------------------------------------------------ uploads
@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "app"
    path.mkdir()
    return path


def _wav(path, seconds: float, rate: int = 8000):
    sf.write(path, np.zeros(int(seconds * rate), np.float32), rate)
    return path


def test_uploads_outside_the_app_folder_are_refused(folder, tmp_path):
    settings = DemoSettings()
    outside = _wav(tmp_path / "outside.wav", 0.5)
    with pytest.raises(UploadError, match="only files uploaded through the page are read"):
        read_clip(outside, folder, settings)
    link = folder / "link.wav"
    link.symlink_to(outside)  # a link inside that points outside is refused too
    with pytest.raises(UploadError, match="only files uploaded"):
        read_clip(link, folder, settings)
    with pytest.raises(UploadError, match="only files uploaded"):
        read_clip(folder / ".." / "outside.wav", folder, settings)


def test_uploads_over_the_limits_are_refused_before_they_are_read(folder):
    wav, rate = read_clip(_wav(folder / "ok.wav", 2.0), folder, DemoSettings(max_clip_seconds=2.0))
    assert wav.shape == (1, 16000) and rate == 8000
    with pytest.raises(UploadError, match=r"long.wav: the clip lasts 3.0 s; the limit is 2 s"):
        read_clip(_wav(folder / "long.wav", 3.0), folder, DemoSettings(max_clip_seconds=2.0))
    with pytest.raises(UploadError, match=r"MB is over the upload limit of 0.01 MB"):
        read_clip(_wav(folder / "big.wav", 2.0), folder, DemoSettings(max_upload_mb=0.01))
    (folder / "empty.wav").write_bytes(b"")
    with pytest.raises(UploadError, match="the file is empty"):
        read_clip(folder / "empty.wav", folder, DemoSettings())
    (folder / "text.wav").write_text("hello")
    with pytest.raises(UploadError, match="not an audio file"):
        read_clip(folder / "text.wav", folder, DemoSettings())


def test_vector_uploads_hold_one_float_vector_and_never_a_pickle(folder):
    np.save(folder / "v.npy", np.ones((1, 512), np.float32))
    assert read_vector(folder / "v.npy", folder, DemoSettings(), 512).shape == (1, 512)
    np.save(folder / "p.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UploadError, match="not a numpy.save file"):
        read_vector(folder / "p.npy", folder, DemoSettings(), 512)
    np.save(folder / "b.npy", np.ones((2, 512), np.float32))
    with pytest.raises(UploadError, match=r"got \(2, 512\)"):
        read_vector(folder / "b.npy", folder, DemoSettings(), 512)


# ------------------------------------------------------------------------------------------- engine
@pytest.fixture
def engine(shared_tiny_generator):
    return DemoEngine(shared_tiny_generator, "tiny", DemoSettings(max_samples=2, max_seconds=2.0))


def test_stream_gives_sixteen_previews_then_what_generate_gives(engine):
    gen = engine.gen
    clap = engine.condition(CONDITIONS[0])
    events = list(engine.generate(clap, Knobs(seed=4), num_samples=2))
    previews, result = events[:-1], events[-1]
    assert [(p.sample, p.index) for p in previews] == [(j, i) for j in range(2) for i in range(16)]
    assert isinstance(result, Result) and result.seeds == (4, 5)
    for j in range(2):
        expected = gen.generate(gen.transformer.uncond_clap(1), seed=4 + j)[0]
        assert torch.equal(result.audio[j], expected)
        assert torch.equal(previews[16 * j + 15].audio, expected)  # all 16 scales: the final audio
        assert torch.equal(gen.tokenizer.decode(result.codes[j])[0], expected)
    coarse = gen.tokenizer.decode(result.codes[0], num_scales=3)[0]
    assert torch.equal(previews[2].audio, coarse)


def test_closing_the_stream_stops_generation_and_frees_the_model(engine):
    stream = engine.generate(engine.condition(CONDITIONS[0]), Knobs(), seconds=2.0)
    first = next(stream)
    assert isinstance(first, Preview) and first.index == 0
    stream.close()  # what Gradio's cancel does to a running generator
    assert engine._lock.acquire(blocking=False)  # the worker stopped and let go of the model
    engine._lock.release()


def test_bad_requests_are_refused_before_any_work(engine):
    clap = engine.condition(CONDITIONS[0])
    with pytest.raises(ValueError, match=r"seconds must lie in \(0, 2\], got 3"):
        engine.generate(clap, Knobs(), seconds=3)
    with pytest.raises(ValueError, match=r"number of samples must be an integer in \[1, 2\], got 3"):
        engine.generate(clap, Knobs(), num_samples=3)
    with pytest.raises(ValueError, match="top_k"):
        Knobs(top_k=-1)
    with pytest.raises(ValueError, match="upload a CLAP vector"):
        engine.condition(CONDITIONS[1])


def test_continuation_keeps_the_clip_and_adds_the_asked_length(shared_tiny_generator):
    gen = shared_tiny_generator
    wav_1T = torch.randn(1, 30000, generator=torch.Generator().manual_seed(0)) * 0.1
    clap = gen.transformer.uncond_clap(1)
    out = continue_audio(gen, wav_1T, clap, add_seconds=0.8, context=0.5, rng=make_generator(1))
    assert out.shape == (1, 30000 + 19200)
    keep = 30000 - round(CROSSFADE * 24000)
    assert torch.equal(out[:, :keep], wav_1T[:, :keep])
    again = continue_audio(gen, wav_1T, clap, add_seconds=0.8, context=0.5, rng=make_generator(1))
    assert torch.equal(out, again)  # one seed, one result
    with pytest.raises(ValueError, match=r"context must lie in \(0, 1\) seconds, got 1.0"):
        continue_audio(gen, wav_1T, clap, add_seconds=0.8, context=1.0, rng=make_generator(1))


def test_inpainting_a_range_leaves_the_rest_of_the_clip(shared_tiny_generator):
    gen = shared_tiny_generator
    wav_1T = torch.randn(1, 60000, generator=torch.Generator().manual_seed(0)) * 0.1
    out = inpaint_range(gen, wav_1T, gen.transformer.uncond_clap(1), start=1.0, end=1.4, seed=0)
    fade = round(0.02 * 24000)
    assert out.shape == wav_1T.shape
    assert torch.equal(out[:, :24000 - fade], wav_1T[:, :24000 - fade])
    assert torch.equal(out[:, 33600 + fade:], wav_1T[:, 33600 + fade:])
    assert not torch.allclose(out[:, 24000:33600], wav_1T[:, 24000:33600])
    with pytest.raises(ValueError, match=r"shorter than one window \(1 s\), got 1.2 s"):
        inpaint_range(gen, wav_1T, gen.transformer.uncond_clap(1), start=0.5, end=1.7, seed=0)


def test_the_readme_command_serves_on_the_loopback_address_in_auto_precision():
    import re
    import shlex
    from pathlib import Path

    from aar.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"## Try it in a browser\n\n```bash\n(.*?)```", readme, flags=re.S).group(1)
    command = block.split("&&")[1].split("#")[0]
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert (args.command, args.model, args.host, args.port, args.precision) == (
        "demo", "qiuk6/AAR", "127.0.0.1", 7860, "auto")


def test_the_server_environment_turns_telemetry_off_and_keeps_uploads_in_its_folder(tmp_path, monkeypatch):
    from aar.demo import quiet_environment
    from aar.demo.server import QUIET

    for name in [*QUIET, "GRADIO_TEMP_DIR"]:  # monkeypatch puts back what was there before
        monkeypatch.delenv(name, raising=False)
    import os

    folder = quiet_environment(tmp_path / "app")
    assert folder.is_dir() and os.environ["GRADIO_TEMP_DIR"] == str(folder)
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"


def test_text_and_clip_conditions_go_through_clap(monkeypatch):
    from conftest import tiny_generator
    from stand_ins import stand_in_clap

    import aar.conditioning.clap

    gen = tiny_generator()
    engine = DemoEngine(gen, "tiny", clap_model="clap.pt", clap_backend="laion-clap")
    monkeypatch.setitem(sys.modules, "laion_clap", None)
    with pytest.raises(ImportError, match=re.escape(pip_command("clap"))):
        engine.condition(CONDITIONS[2], prompt="rain")  # the page shows this line
    monkeypatch.setattr(aar.conditioning.clap.ClapEncoder, "check_installed",
                        staticmethod(lambda backend: None))
    loaded = []
    monkeypatch.setattr(aar.conditioning.clap.ClapEncoder, "from_pretrained",
                        classmethod(lambda cls, *args, **kw: loaded.append((args, kw)) or stand_in_clap()))
    clip = (torch.randn(2, 8000, generator=torch.Generator().manual_seed(0)), 16000)
    assert torch.equal(engine.condition(CONDITIONS[2], prompt=" rain "), gen.clap_vectors(prompt="rain"))
    expected = gen.clap_vectors(audio=clip[0], sample_rate=16000)
    assert torch.equal(engine.condition(CONDITIONS[3], clip=clip), expected)
    assert loaded == [(("clap.pt",), {"backend": "laion-clap", "device": gen.device})]  # once, on first use
    with pytest.raises(ValueError, match="type a text prompt"):
        engine.condition(CONDITIONS[2], prompt="  ")
    with pytest.raises(ValueError, match="upload a reference clip"):
        engine.condition(CONDITIONS[3])


def test_variation_previews_cover_the_whole_clip(engine):
    gen = engine.gen
    clip = (torch.randn(1, 30000, generator=torch.Generator().manual_seed(1)) * 0.1, 24000)
    clap = engine.condition(CONDITIONS[0])
    events = list(engine.vary(clip, clap, Knobs(seed=2), keep_scales=3))
    previews, result = events[:-1], events[-1]
    assert [p.index for p in previews] == list(range(16))
    assert all(p.audio.shape == (1, 30000) for p in previews)  # both windows, cut to the clip
    expected = gen.vary(clip[0], 24000, keep_scales=3, clap_emb=clap, seed=2)[0]
    assert torch.equal(result.audio[0], expected) and torch.equal(previews[-1].audio, expected)
