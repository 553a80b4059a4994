"""Audio input is never guessed: one 2-D rule everywhere, ``aar.load_audio``, and file permissions."""

from __future__ import annotations

import math
import os
import stat

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SAT_PTH
from stand_ins import stand_in_clap

import aar
from aar import load_audio
from aar.audio import AUDIO_EXTENSIONS, as_audio_batch, is_audio_file, write_audio
from aar.loading.codes_file import save_codes

pytestmark = pytest.mark.usefixtures("one_thread")

# name: (sample rate, channels, seconds, soundfile format, subtype)
FILES = {
    "stereo_44k.wav": (44100, 2, 0.7, "WAV", "PCM_16"),
    "speech_22k.flac": (22050, 1, 0.6, "FLAC", "PCM_16"),
    "tone_8k.ogg": (8000, 1, 1.2, "OGG", "VORBIS"),
    "short_16k.wav": (16000, 2, 0.3, "WAV", "FLOAT"),
    "stereo_48k.ogg": (48000, 2, 0.4, "OGG", "VORBIS"),
    "stereo_44k.mp3": (44100, 2, 0.5, "MP3", "MPEG_LAYER_III"),
}


def _signal(rate: int, channels: int, seconds: float) -> np.ndarray:
    """(frames, channels) tones, a different pitch per channel, as soundfile lays audio out."""
    t = np.arange(round(rate * seconds)) / rate
    return np.stack([0.4 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)], axis=1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    written = {}
    for name, (rate, channels, seconds, fmt, subtype) in FILES.items():
        if fmt not in sf.available_formats():  # mp3 needs libsndfile >= 1.1
            continue
        sf.write(root / name, _signal(rate, channels, seconds).astype(np.float32), rate, format=fmt,
                 subtype=subtype)
        written[name] = root / name
    return written


@pytest.fixture(params=sorted(FILES))
def path(request, files):
    if request.param not in files:
        pytest.skip(f"this libsndfile cannot write {request.param}")
    return files[request.param]


def test_load_audio_equals_soundfile_transposed(path):
    wav, rate = load_audio(path)
    x, sr = sf.read(path, dtype="float32")
    x = x.reshape(len(x), -1)  # (frames, C)
    assert rate == sr == FILES[path.name][0]
    assert wav.dtype == torch.float32 and wav.shape == (FILES[path.name][1], x.shape[0])
    np.testing.assert_array_equal(wav.numpy(), x.T)


def test_soundfile_layout_is_refused_and_the_fixes_agree(path, tiny_tokenizer):
    rate, channels, seconds, *_ = FILES[path.name]
    x, sr = sf.read(path)  # float64 (frames, C), or (frames,) for mono
    if channels == 2:
        for wrong in (torch.from_numpy(x), x, x.astype(np.float32)):
            with pytest.raises(ValueError, match=r"\(frames, channels\).*wav\.T.*aar\.load_audio") as err:
                tiny_tokenizer.encode(wrong, sample_rate=sr)
            assert f"({x.shape[0]}, 2)" in str(err.value)  # the shape received
    by_transpose = tiny_tokenizer.encode(x.T, sample_rate=sr)
    by_loader = tiny_tokenizer.encode(*load_audio(path))
    assert by_transpose.equal(by_loader)
    frames = x.shape[0]
    assert by_loader.length == math.ceil(frames * 24000 / sr)
    assert by_loader.length / 24000 == pytest.approx(frames / rate, abs=1 / rate)
    assert by_loader.num_windows == math.ceil(by_loader.length / 24000)
    assert by_loader.sample_rate == rate and by_loader.batch_size == 1


def test_int16_pcm_file_equals_its_float_reading(files, tiny_tokenizer):
    path = files["stereo_44k.wav"]  # PCM_16 on disk
    pcm, rate = sf.read(path, dtype="int16")
    as_float, _ = load_audio(path)
    torch.testing.assert_close(as_audio_batch(pcm.T)[0], as_float, rtol=0, atol=0)
    assert tiny_tokenizer.encode(pcm.T, rate).equal(tiny_tokenizer.encode(as_float, rate))


def test_2d_input_is_one_clip_of_any_channel_count(tiny_tokenizer):
    clips = 0.1 * torch.randn(4, 5000, generator=torch.Generator().manual_seed(0))
    four = tiny_tokenizer.encode(clips, 16000)  # (C, T): one clip of 4 channels, averaged
    assert four.batch_size == 1 and four.equal(tiny_tokenizer.encode(clips.mean(0), 16000))
    three = tiny_tokenizer.encode(clips[:3].numpy(), 16000)
    assert three.equal(tiny_tokenizer.encode(clips[:3][None], 16000))
    with pytest.raises(ValueError, match=r"\(5000, 3\).*\(frames, channels\).*wav\.T"):
        tiny_tokenizer.encode(clips[:3].T, 16000)  # soundfile's layout of a 3-channel file
    batch = tiny_tokenizer.encode(clips[:, None], 16000)  # a batch of mono clips is (B, 1, T)
    assert batch.batch_size == 4
    for b in range(4):
        alone = tiny_tokenizer.encode(clips[b], 16000)
        assert all(c[b : b + 1].equal(a) for c, a in zip(batch, alone))
    # (2, T) is one stereo clip: its codes are those of the channel average
    stereo = tiny_tokenizer.encode(clips[:2], 16000)
    assert stereo.batch_size == 1 and stereo.equal(tiny_tokenizer.encode(clips[:2].mean(0), 16000))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.int32])
def test_numpy_input_equals_tensor_input(dtype, tiny_tokenizer):
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.5, 0.5, (2, 7000))
    if np.issubdtype(dtype, np.integer):
        x = x * np.iinfo(dtype).max
    x = x.astype(dtype)
    from_numpy = tiny_tokenizer.encode(x, 22050)
    assert from_numpy.equal(tiny_tokenizer.encode(torch.from_numpy(x), 22050))
    assert from_numpy.equal(tiny_tokenizer.encode(x[None], 22050))  # (1, C, T)
    assert from_numpy.equal(tiny_tokenizer.encode(np.asfortranarray(x), 22050))  # any memory order


def test_bad_dtypes_and_ranks_name_what_was_received():
    with pytest.raises(TypeError, match="uint8"):
        as_audio_batch(np.zeros((1, 10), np.uint8))
    with pytest.raises(TypeError, match="complex"):
        as_audio_batch(np.zeros(10, np.complex64))
    with pytest.raises(TypeError, match="list"):
        as_audio_batch([0.0, 0.1])
    with pytest.raises(ValueError, match=r"4 dims \(1, 1, 1, 10\)"):
        as_audio_batch(torch.zeros(1, 1, 1, 10))
    with pytest.raises(ValueError, match="empty"):
        as_audio_batch(np.zeros((0, 10), np.float32))


def test_every_audio_argument_follows_the_rule(official_generator, monkeypatch):
    """generate(audio=), vary, inpaint and CLAP refuse a transposed (T, C) array before any work is done,
    and take (C, T) as one clip of any channel count."""
    gen = official_generator
    clips = torch.zeros(3, 24000).T  # soundfile's (frames, channels) layout of a 3-channel clip
    clap = stand_in_clap()
    monkeypatch.setattr(gen, "_clap", lambda: clap)
    emb = torch.nn.functional.normalize(torch.ones(1, 512), dim=-1)
    calls = {
        "clap": lambda: clap.embed_audio(clips, 24000),
        "generate": lambda: gen.generate(audio=clips, sample_rate=24000),
        "vary": lambda: gen.vary(clips, 24000, keep_scales=4, clap_emb=emb),
        "inpaint": lambda: gen.inpaint(clips, (0.0, 0.5), emb, sample_rate=24000),
    }
    for name in calls:
        with pytest.raises(ValueError, match=r"\(24000, 3\).*frames, channels.*\.T "):
            calls[name]()
    three = 0.1 * torch.randn(3, 16000, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(clap.embed_audio(three, 16000), clap.embed_audio(three.mean(0), 16000))
    with pytest.raises(ValueError, match=r"\(24000, 2\).*\.T"):
        clap.embed_audio(torch.zeros(24000, 2), 24000)
    # numpy arrays are taken wherever tensors are
    clip = (0.2 * np.sin(np.arange(20000) / 7)).astype(np.float32)[None]  # (1, T) at 16 kHz
    torch.testing.assert_close(clap.embed_audio(clip, 16000), clap.embed_audio(torch.from_numpy(clip), 16000),
                               rtol=0, atol=0)
    varied = gen.vary(clip, 16000, keep_scales=4, clap_emb=emb, seed=0)
    assert varied.equal(gen.vary(torch.from_numpy(clip), 16000, keep_scales=4, clap_emb=emb, seed=0))
    assert varied.shape == (1, 1, 30000)


def test_load_audio_errors_name_the_path(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="nowhere.wav"):
        load_audio(tmp_path / "nowhere.wav")
    with pytest.raises(ValueError, match=f"{tmp_path}.*folder"):
        load_audio(tmp_path)
    (tmp_path / "junk.flac").write_bytes(b"fLaC" + bytes(64))
    with pytest.raises(ValueError, match="cannot read audio file .*junk.flac"):
        load_audio(tmp_path / "junk.flac")
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), 8000)
    with pytest.raises(ValueError, match="empty.wav holds no samples"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "old.mp3").write_bytes(b"ID3" + bytes(64))
    monkeypatch.setattr(sf, "available_formats", lambda: {"WAV": "WAV"})  # a libsndfile before 1.1
    with pytest.raises(ValueError, match="old.mp3.*libsndfile .* cannot decode MP3"):
        load_audio(tmp_path / "old.mp3")


def test_every_listed_extension_is_read(tmp_path):
    """AUDIO_EXTENSIONS is what aar tokenize and the examples pick up: each one must really load."""
    kinds = {".aif": ("AIFF", None), ".aiff": ("AIFF", None), ".au": ("AU", None), ".caf": ("CAF", None),
             ".flac": ("FLAC", None), ".mp3": ("MP3", None), ".oga": ("OGG", None),
             ".ogg": ("OGG", None), ".opus": ("OGG", "OPUS"), ".w64": ("W64", None), ".wav": ("WAV", None)}
    assert set(kinds) == set(AUDIO_EXTENSIONS)
    x = _signal(48000, 2, 0.1).astype(np.float32)
    for ext, (fmt, subtype) in kinds.items():
        if fmt not in sf.available_formats():
            continue
        path = tmp_path / f"clip{ext.upper()}"  # extensions match in any case
        sf.write(path, x, 48000, format=fmt, subtype=subtype)
        assert is_audio_file(path)
        wav, rate = load_audio(path)
        assert rate == 48000 and wav.shape == (2, x.shape[0]), ext
    assert not is_audio_file(tmp_path) and not is_audio_file(tmp_path / "notes.txt")


def test_tokenize_folder_reads_what_load_audio_reads(tmp_path, tiny_tokenizer, files):
    """Any channel count and listed extension goes through ``aar tokenize``, coded like tok.encode."""
    from aar.data import list_audio_files, tokenize_folder

    pq = pytest.importorskip("pyarrow.parquet")
    src = tmp_path / "src"
    src.mkdir()
    sf.write(src / "three.w64", _signal(16000, 3, 0.4).astype(np.float32), 16000)
    sf.write(src / "voice.opus", _signal(48000, 1, 0.3).astype(np.float32), 48000, format="OGG",
             subtype="OPUS")
    (src / "stereo.wav").write_bytes(files["stereo_44k.wav"].read_bytes())
    (src / "notes.txt").write_text("not audio")
    assert list_audio_files(src) == ["stereo.wav", "three.w64", "voice.opus"]
    tiny_tokenizer.save_pretrained(tmp_path / "tiny")
    previous = os.umask(0o027)
    try:
        summary = tokenize_folder(src, tmp_path / "out", tmp_path / "tiny", progress=False)
    finally:
        os.umask(previous)
    assert summary.rows == 3 and summary.errors == 0
    outputs = sorted((tmp_path / "out").iterdir())
    assert {p.suffix for p in outputs} >= {".parquet", ".json", ".jsonl"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o640 for p in outputs), outputs  # shards follow the umask
    table = pq.read_table(next((tmp_path / "out").glob("shard-*.parquet"))).to_pylist()
    for row in table:
        wav, rate = load_audio(src / row["path"])
        codes = tiny_tokenizer.encode(wav[None], rate)
        assert row["sample_rate"] == rate and row["length"] == codes.length
        assert all(np.array_equal(row[f"codes_{i}"], c[0].numpy()) for i, c in enumerate(codes))


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(umask, tmp_path, tiny_tokenizer):
    previous = os.umask(umask)
    try:
        wav = torch.zeros(1, 2400)
        audio = write_audio(tmp_path / "a.wav", wav, 24000)
        codes_path = tmp_path / "a.codes"
        save_codes(codes_path, tiny_tokenizer.encode(wav, 24000), tiny_tokenizer)
        tiny_tokenizer.save_pretrained(tmp_path / "model")
        plain = tmp_path / "plain.txt"
        plain.write_text("an ordinary write")
    finally:
        os.umask(previous)
    expected = 0o666 & ~umask
    assert stat.S_IMODE(plain.stat().st_mode) == expected
    written = [audio, codes_path, *sorted((tmp_path / "model").iterdir())]
    assert len(written) == 4
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
    assert not [p for p in tmp_path.rglob("*") if ".part" in p.name]


def test_write_audio_follows_the_same_rule(tmp_path):
    with pytest.raises(ValueError, match=r"\(2400, 2\).*wav\.T"):
        write_audio(tmp_path / "a.wav", torch.zeros(2400, 2), 24000)
    assert not list(tmp_path.iterdir())
    stereo = torch.stack([torch.linspace(-0.5, 0.5, 2400), torch.zeros(2400)])  # (2, T)
    wav, rate = load_audio(write_audio(tmp_path / "a.wav", stereo, 24000))
    assert rate == 24000 and wav.equal(stereo)


def test_overwriting_keeps_the_files_mode(tmp_path):
    path = tmp_path / "a.flac"
    write_audio(path, torch.zeros(1, 100), 8000)
    path.chmod(0o640)
    write_audio(path, torch.ones(1, 100) * 0.5, 8000)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert load_audio(path)[0].shape == (1, 100)


def test_load_audio_is_exported():
    assert aar.load_audio is load_audio and "load_audio" in aar.__all__


def test_cli_encode_takes_any_channel_count(tmp_path, official_tokenizer):
    """``aar encode`` reads with load_audio and codes a 3-channel file as one clip, like the library."""
    from aar.cli import main
    from aar.loading.codes_file import load_codes

    sf.write(tmp_path / "three.flac", _signal(11025, 3, 0.5).astype(np.float32), 11025)
    assert main(["encode", str(tmp_path / "three.flac"), str(tmp_path / "three.codes"), "--model",
                 str(SAT_PTH), "--quiet"]) == 0
    wav, rate = load_audio(tmp_path / "three.flac")
    codes = load_codes(tmp_path / "three.codes", official_tokenizer)
    assert codes.equal(official_tokenizer.encode(wav[None], rate))
    assert codes.length == math.ceil(wav.shape[-1] * 24000 / 11025) and codes.sample_rate == 11025
