"""The rules that keep a plausible-looking call from giving a silently wrong answer.

The sample rate is always said, CLAP vectors are scaled to unit norm, any channel count is one clip,
and written files say when they clip.
"""

import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tiny_generator

from aar import load_audio
from aar.audio import write_audio
from aar.errors import ClippingWarning


def _unit(seed=0):
    v = torch.randn(512, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


# ------------------------------------------------------------------------------------ sample rate
def test_encode_needs_the_sample_rate(tiny_tokenizer):
    wav = 0.1 * torch.randn(1, 4410, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="sample_rate"):
        tiny_tokenizer.encode(wav)
    with pytest.raises(TypeError, match=r"aar\.load_audio.*sample_rate=24000"):
        tiny_tokenizer.encode(wav, None)
    codes = tiny_tokenizer.encode(wav, 44100)  # 0.1 s at 44.1 kHz stays 0.1 s
    assert codes.length == 2400 and tiny_tokenizer.decode(codes).shape[-1] == 2400


# -------------------------------------------------------------------------------------- channels
def test_a_surround_file_encodes_through_the_api_as_through_the_cli(tmp_path, tiny_tokenizer):
    surround = 0.1 * np.random.default_rng(0).standard_normal((3000, 6)).astype(np.float32)
    sf.write(tmp_path / "surround_5_1.wav", surround, 48000)  # soundfile: (frames, channels)
    wav, sr = load_audio(tmp_path / "surround_5_1.wav")
    assert wav.shape == (6, 3000)
    codes = tiny_tokenizer.encode(wav, sr)
    assert codes.batch_size == 1
    assert codes.equal(tiny_tokenizer.encode(wav[None], sr))  # what the CLI passes: (1, C, T)
    assert codes.equal(tiny_tokenizer.encode(wav.mean(0), sr))  # channels averaged
    with pytest.raises(ValueError, match=r"\(3000, 6\).*frames, channels.*wav\.T"):
        tiny_tokenizer.encode(wav.T, sr)


# ------------------------------------------------------------------------------------------ CLAP
@pytest.fixture(scope="module")
def gen():
    return tiny_generator()


def test_clap_vectors_are_scaled_to_unit_norm(gen):
    v = _unit()
    unit = gen.generate_codes(v, seed=0)
    assert gen.generate_codes(10 * v, seed=0).equal(unit)
    assert gen.generate_codes((0.3 * v).numpy(), seed=0).equal(unit)
    assert torch.equal(gen.clap_vectors(v), v[None])  # a unit row is used bit for bit
    torch.testing.assert_close(gen.clap_vectors(torch.stack([v, 7 * v])).norm(dim=-1), torch.ones(2))


def test_a_zero_clap_vector_is_refused(gen):
    with pytest.raises(ValueError, match=r"row\(s\) \[1\] are all zeros"):
        gen.generate_codes(torch.stack([_unit(), torch.zeros(512)]), seed=0)


# ----------------------------------------------------------------------------------- writing audio
def test_pcm_output_warns_when_it_clips(tmp_path):
    loud = torch.linspace(-2, 2, 2400)[None]
    with pytest.warns(ClippingWarning, match=r"loud\.flac: peak 2 .*FLAC PCM_16 clips"):
        write_audio(tmp_path / "loud.flac", loud, 24000)
    back, _ = load_audio(tmp_path / "loud.flac")
    assert back.max() <= 1 and back.min() >= -1 and back.max() > 0.99
    with pytest.warns(ClippingWarning, match="WAV PCM_16"):
        write_audio(tmp_path / "loud16.wav", loud, 24000, subtype="PCM_16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_audio(tmp_path / "loud.wav", loud, 24000)  # float WAV keeps the values
        write_audio(tmp_path / "quiet.flac", loud / 2, 24000)
    kept, _ = load_audio(tmp_path / "loud.wav")
    torch.testing.assert_close(kept, loud, rtol=0, atol=0)


def test_write_audio_subtypes_and_the_decoded_layout(tmp_path):
    wav_11T = 0.5 * torch.sin(torch.arange(2400) / 10.0)[None, None]  # what decode returns for B = 1
    out = write_audio(tmp_path / "a.wav", wav_11T, 24000, subtype="PCM_16")
    assert sf.info(str(out)).subtype == "PCM_16"
    back, _ = load_audio(out)
    torch.testing.assert_close(back, wav_11T[0], rtol=0, atol=1 / 32768)
    assert sf.info(str(write_audio(tmp_path / "b.wav", wav_11T, 24000))).subtype == "FLOAT"
    flac = write_audio(tmp_path / "c.flac", wav_11T, 24000, subtype="PCM_24")
    assert sf.info(str(flac)).subtype == "PCM_24"
    with pytest.raises(ValueError, match=r"subtype 'PCM_16'.*OGG allows \['VORBIS'\]"):
        write_audio(tmp_path / "d.ogg", wav_11T, 24000, subtype="PCM_16")
    with pytest.raises(ValueError, match=r"\(2, 1, 2400\).*one item at a time"):
        write_audio(tmp_path / "e.wav", wav_11T.expand(2, 1, 2400), 24000)


def test_writing_onto_a_folder_names_the_folder(tmp_path):
    (tmp_path / "out.wav").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        write_audio(tmp_path / "out.wav", torch.zeros(100), 24000)
    assert info.value.filename == str(tmp_path / "out.wav") and ".part" not in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


# ------------------------------------------------------------------------------------------- extras
def test_an_installed_but_broken_extra_is_not_called_missing(monkeypatch):
    import importlib
    import sys

    pytest.importorskip("pyarrow")
    from aar.errors import MissingExtraError, pip_command, require_extra

    real = importlib.import_module

    def broken(name, *args, **kwargs):  # what pyarrow 26 does beside numpy 1
        if name.split(".")[0] == "pyarrow":
            raise ImportError("pyarrow requires NumPy 2.0 or newer, found 1.26.4")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(MissingExtraError) as info:
        require_extra("pyarrow", "data", "aar.data")
    assert str(info.value) == (
        "aar.data needs the 'pyarrow' package, which is installed but cannot be imported (pyarrow "
        "requires NumPy 2.0 or newer, found 1.26.4); reinstall it in a fresh environment with: "
        + pip_command("data"))
    assert (info.value.package, info.value.extra) == ("pyarrow", "data") and info.value.cause
    monkeypatch.setitem(sys.modules, "surely_missing_pkg", None)
    with pytest.raises(MissingExtraError, match="needs the 'surely_missing_pkg' package, which is not inst"):
        require_extra("surely_missing_pkg", "data", "aar.data")
