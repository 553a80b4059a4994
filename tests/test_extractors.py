"""The metric networks (VGGish, PANNs CNN14, CLAP), their safe loading, and the embedding cache.

Each network is built at its real architecture with random weights, saved to a local file and loaded
back; nothing is downloaded.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import pytest
import torch
from official_layout import populate_hub_cache
from payload import Payload
from safetensors.torch import load_file, save_file
from stand_ins import stand_in_clap

from aar.audio import load_audio, resample, to_mono, write_audio
from aar.errors import CheckpointError
from aar.loading.official import rename
from aar.metrics import (
    AudioClassifier,
    ClapExtractor,
    EmbeddingCache,
    EmbeddingExtractor,
    PANNsCNN14,
    PANNsCNN14At16k,
    VGGish,
    _weights,
    frechet_distance,
    inception_score,
    kl_divergence,
    weights_fingerprint,
)
from aar.metrics import panns as panns_module
from aar.metrics import vggish as vggish_module


def _tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * rate), dtype=torch.float32) / rate
    return amplitude * torch.sin(2 * math.pi * freq * t)


def _half_precision_weights(model: torch.nn.Module) -> torch.nn.Module:
    """Round float weights to float16 values, so a float16 file holds them exactly (half the bytes)."""
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    return model.eval()


# ------------------------------------------------------------------------------------------ VGGish


@pytest.fixture(scope="module")
def vggish_file(tmp_path_factory):
    torch.manual_seed(0)
    model = _half_precision_weights(VGGish())
    path = tmp_path_factory.mktemp("vggish") / vggish_module.CHECKPOINT_NAME
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, path)
    return model, path


def test_vggish_frontend_constants():
    weights = vggish_module.mel_matrix()
    assert weights.shape == (257, 64)
    assert (weights[0] == 0).all() and (weights >= 0).all()
    # every band's peak lies between 125 and 7500 Hz, in increasing order
    peak_hz = weights.argmax(0) * 8000 / 256
    assert peak_hz.min() >= 125 and peak_hz.max() <= 7500 and (peak_hz.diff() >= 0).all()
    assert vggish_module.MIN_SAMPLES == 15_600
    assert vggish_module.frames_for(16_000) == 1 and vggish_module.frames_for(31_200) == 2


def test_vggish_log_mel_known_values():
    silence = vggish_module.log_mel_examples(torch.zeros(1, 16_000))
    assert silence.shape == (1, 1, 96, 64)
    torch.testing.assert_close(silence, torch.full_like(silence, math.log(0.01)))
    # a 1-kHz tone peaks in the band whose HTK-mel centre is nearest 1 kHz
    examples = vggish_module.log_mel_examples(_tone(1000.0, 2.0, 16_000)[None])
    assert examples.shape == (1, 2, 96, 64)
    low, high = (1127 * math.log1p(f / 700) for f in (125.0, 7500.0))
    centres = [low + (high - low) * (i + 1) / 65 for i in range(64)]
    nearest = min(range(64), key=lambda i: abs(centres[i] - 1127 * math.log1p(1000 / 700)))
    assert int(examples[0, 0].mean(0).argmax()) == nearest


def test_vggish_frontend_matches_the_published_code():
    """Against fixtures/metrics/vggish_frontend.safetensors, written by the TensorFlow VGGish
    ``mel_features`` module (as carried by harritaylor/torchvggish) in float64: a 2.1-s 440-Hz tone
    with noise at 16 kHz, its two 96x64 log-mel examples, and the mel matrix."""
    reference = load_file(str(Path(__file__).parent / "fixtures" / "metrics" / "vggish_frontend.safetensors"))
    torch.testing.assert_close(vggish_module.mel_matrix(), reference["mel_matrix"], rtol=0, atol=1e-12)
    examples = vggish_module.log_mel_examples(reference["input"].double()[None])[0]
    torch.testing.assert_close(examples, reference["examples"], rtol=0, atol=1e-10)
    # in float32, as embed_frames runs it
    examples = vggish_module.log_mel_examples(reference["input"][None])[0]
    torch.testing.assert_close(examples.double(), reference["examples"], rtol=0, atol=1e-4)


def test_vggish_loads_back_equal(vggish_file):
    model, path = vggish_file
    loaded = VGGish.from_pretrained(path)
    assert isinstance(loaded, EmbeddingExtractor) and not loaded.training
    wav = 0.1 * torch.randn(2, 1, 20_000, generator=torch.Generator().manual_seed(1))
    frames = loaded.embed_frames(wav)
    assert frames.shape == (2, 1, 128) and frames.dtype == torch.float32
    torch.testing.assert_close(frames, model.embed_frames(wav), rtol=0, atol=0)
    torch.testing.assert_close(loaded.embed(wav), frames[:, 0], rtol=0, atol=0)
    loaded.batch_size = 1  # one example per forward pass: the same values
    torch.testing.assert_close(loaded.embed_frames(wav), frames, rtol=0, atol=1e-6)
    # a folder holding the default file name loads the same weights
    assert torch.equal(VGGish.from_pretrained(path.parent).features[0].weight, model.features[0].weight)


def test_vggish_safetensors_and_pca_keys(vggish_file, tmp_path):
    model, path = vggish_file
    state = dict(torch.load(path, weights_only=True))
    state["pproc.pca_eigen_vectors"] = torch.eye(128)  # torchvggish's postprocessor: not used by FAD
    state["pproc.pca_means"] = torch.zeros(128, 1)
    save_file(state, str(tmp_path / "vggish.safetensors"))
    loaded = VGGish.from_pretrained(tmp_path / "vggish.safetensors")
    wav = torch.zeros(1, 1, 16_000)
    torch.testing.assert_close(loaded.embed(wav), model.embed(wav), rtol=0, atol=0)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: s.pop("embeddings.4.bias"), "missing keys.*embeddings.4.bias"),
        (lambda s: s.update({"embeddings.4.bias": torch.zeros(3)}), "mis-shaped.*embeddings.4.bias"),
        (lambda s: s.update({"classifier.weight": torch.zeros(1)}), "unexpected key.*classifier.weight"),
    ],
)
def test_vggish_keys_load_strictly(vggish_file, edit, match):
    state = dict(vggish_file[0].state_dict())
    edit(state)
    with torch.device("meta"):
        model = VGGish()
    with pytest.raises(CheckpointError, match=match):
        state = rename(state, vggish_module.KEY_RULES, vggish_module.DROPPED, "test")
        _weights.load_into(model, state, "test")


@pytest.mark.parametrize("cls", [VGGish, PANNsCNN14])
@pytest.mark.parametrize("layout", ["flat", "model"])
def test_pickled_payload_is_refused(cls, layout, tmp_path):
    marker = tmp_path / "ran"
    payload = {"fc1.weight": torch.zeros(1), "evil": Payload(marker)}
    torch.save(payload if layout == "flat" else {"model": payload}, tmp_path / "pickled.pth")
    with pytest.raises(CheckpointError, match="pickled Python objects are refused"):
        cls.from_pretrained(tmp_path / "pickled.pth")
    assert not marker.exists()


def test_vggish_from_the_hub_cache(vggish_file, tmp_path):
    """A Hub repo id resolves through huggingface_hub's cache, offline (the suite sets HF_HUB_OFFLINE)."""
    files = {vggish_module.CHECKPOINT_NAME: vggish_file[1]}
    populate_hub_cache(tmp_path / "hub", "harritaylor/torchvggish", files)
    loaded = VGGish.from_pretrained("harritaylor/torchvggish", cache_dir=tmp_path / "hub")
    assert torch.equal(loaded.embeddings[4].weight, vggish_file[0].embeddings[4].weight)
    with pytest.raises(FileNotFoundError, match="not in the local cache"):
        VGGish.from_pretrained("harritaylor/torchvggish", cache_dir=tmp_path / "hub", filename="other.pth")


def test_non_state_dict_is_refused(tmp_path):
    torch.save({"model": {"fc1.weight": "text"}}, tmp_path / "strings.pth")
    with pytest.raises(CheckpointError, match="not a tensor"):
        PANNsCNN14.from_pretrained(tmp_path / "strings.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="safetensors"):
        VGGish.from_pretrained(tmp_path / "junk.safetensors")


def test_missing_weights_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{vggish_module.CHECKPOINT_NAME}.*harritaylor/torchvggish"):
        VGGish.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="Zenodo record 3987831"):
        PANNsCNN14.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="not in the local cache"):
        PANNsCNN14.from_pretrained("someone/panns", local_files_only=True, cache_dir=tmp_path)
    with pytest.raises(TypeError, match="int"):
        VGGish.from_pretrained(3)
    with pytest.raises(FileNotFoundError, match="not a Hub repo id"):
        VGGish.from_pretrained(tmp_path / "missing.pth")
    (tmp_path / "weights.pth").write_bytes(b"")
    with pytest.raises(ValueError, match="is a file"):
        PANNsCNN14.from_pretrained(tmp_path / "weights.pth", filename="other.pth")


@pytest.mark.parametrize("section, kind", [("generator_state_dict", "SAT tokenizer"),
                                           ("model_state_dict", "AAR generator")])
def test_an_official_aar_checkpoint_is_named_as_such(tmp_path, section, kind):
    path = tmp_path / "SAT_d128_lat128.pth"
    torch.save({section: {"encoder.weight": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match=f"official AAR checkpoint.*{kind}.*vggish-10086976.pth"):
        VGGish.from_pretrained(path)


def test_two_dimensional_audio_is_ambiguous(vggish_file):
    with pytest.raises(ValueError, match="2 dims"):
        vggish_file[0].embed(torch.zeros(2, 16_000))


# ------------------------------------------------------------------------------------------- PANNs


def _official_panns_state(model: PANNsCNN14) -> dict[str, torch.Tensor]:
    """The model's weights under the key names of the released ``Cnn14_mAP=0.431.pth``."""
    state = {k: v.clone() for k, v in model.state_dict().items() if k != "mel_filters"}
    state["logmel_extractor.melW"] = model.mel_filters.clone()
    state["spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(513, 1, 1024)
    state["spectrogram_extractor.stft.conv_imag.weight"] = torch.zeros(513, 1, 1024)
    return state


@pytest.fixture(scope="module")
def panns_file(tmp_path_factory):
    torch.manual_seed(0)
    model = PANNsCNN14()
    with torch.no_grad():  # non-trivial batch-norm statistics, so loading them is checked
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    model = _half_precision_weights(model)
    state = {k: v.half() if v.is_floating_point() and v.numel() > 1e5 else v
             for k, v in _official_panns_state(model).items()}
    path = tmp_path_factory.mktemp("panns") / panns_module.CHECKPOINT_NAME
    torch.save({"model": state, "iteration": 660_000}, path)
    return model, path


def test_panns_official_layout_loads_back_equal(panns_file):
    model, path = panns_file
    loaded = PANNsCNN14.from_pretrained(path)
    assert isinstance(loaded, AudioClassifier) and isinstance(loaded, EmbeddingExtractor)
    wav = 0.1 * torch.randn(2, 1, 16_000, generator=torch.Generator().manual_seed(2))
    out, expected = loaded(wav), model(wav)
    assert out.probs.shape == (2, 527) and out.embedding.shape == (2, 2048)
    torch.testing.assert_close(out.logits, expected.logits, rtol=0, atol=0)
    torch.testing.assert_close(loaded.probs(wav), torch.sigmoid(out.logits), rtol=0, atol=0)
    assert (loaded.embed(wav) >= 0).all()  # a ReLU output


def test_panns_16k_variant_is_read_from_the_checkpoint(tmp_path):
    """A checkpoint with 257-row mel filters (Cnn14_16k_mAP=0.438) loads as the 16-kHz network."""
    torch.manual_seed(1)
    model = PANNsCNN14At16k().eval()
    state = {k: v.clone() for k, v in model.state_dict().items() if k != "mel_filters"}
    state["logmel_extractor.melW"] = model.mel_filters.clone()
    state["spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(257, 1, 512)
    path = tmp_path / "Cnn14_16k_mAP=0.438.pth"
    torch.save({"model": state}, path)
    loaded = PANNsCNN14.from_pretrained(path)
    assert type(loaded) is PANNsCNN14At16k and loaded.sample_rate == 16_000
    assert loaded.name == "panns-cnn14-16k" and loaded.mel_filters.shape == (257, 64)
    wav = 0.1 * torch.randn(1, 1, 16_000, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(loaded(wav).logits, model(wav).logits, rtol=0, atol=0)
    assert loaded.log_mel(wav[:, 0]).shape == (1, 1, 101, 64)  # hop 160: 1 + 16000 // 160 frames


def test_panns_refuses_unknown_keys(panns_file):
    state = _official_panns_state(panns_file[0])
    state["att_block.cla.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="unexpected key.*att_block.cla.weight"):
        rename(state, panns_module.KEY_RULES, panns_module.REBUILT, "test")


def test_panns_frontend_known_values():
    model = PANNsCNN14.__new__(PANNsCNN14)  # the frontend needs only the mel filters
    torch.nn.Module.__init__(model)
    model.register_buffer("mel_filters", panns_module.mel_filters())
    silence = model.log_mel(torch.zeros(1, 32_000))
    assert silence.shape == (1, 1, 101, 64)  # centred frames: 1 + 32000 // 320
    torch.testing.assert_close(silence, torch.full_like(silence, -100.0))  # 10 log10(1e-10)
    tone = model.log_mel(_tone(2000.0, 1.0, 32_000)[None])[0, 0].mean(0)
    centre_hz = (panns_module.mel_filters().argmax(0) * 32_000 / 1024).float()
    assert abs(float(centre_hz[int(tone.argmax())]) - 2000.0) < 100.0
    assert model.log_mel(torch.zeros(1, 100)).shape[2] == 32  # padded to MIN_SAMPLES


# ------------------------------------------------------------------ ISc and KL on a built classifier


class HalvesClassifier:
    """Two classes: the share of a clip's energy in its first and in its second half."""

    name = "halves"
    sample_rate = 8_000
    num_classes = 2

    def probs(self, wav: torch.Tensor) -> torch.Tensor:
        first, second = wav[:, 0].square().chunk(2, dim=-1)
        energy = torch.stack([first.sum(-1), second.sum(-1)], dim=-1)
        return energy / energy.sum(-1, keepdim=True)


def test_inception_score_and_kl_from_a_classifier():
    classifier = HalvesClassifier()
    assert isinstance(classifier, AudioClassifier)
    front = torch.cat([torch.ones(100), torch.zeros(100)])
    even = torch.ones(200)
    back = torch.cat([torch.zeros(100), torch.ones(100)])
    generated = classifier.probs(torch.stack([front, even])[:, None])  # (1, 0) and (0.5, 0.5)
    marginal = (0.75, 0.25)
    kl = [math.log(1 / marginal[0]), 0.5 * math.log(0.5 / marginal[0]) + 0.5 * math.log(0.5 / marginal[1])]
    assert inception_score(generated, splits=1) == pytest.approx(math.exp(sum(kl) / 2), rel=1e-9)
    reference = classifier.probs(torch.stack([even, back])[:, None])  # (0.5, 0.5) and (0, 1)
    # pair 1: KL((.5, .5) || (1, 0)) = .5 ln(.5 / (1 + eps)) + .5 ln(.5 / eps), eps = 1e-6 (audioldm_eval);
    # pair 2: KL((0, 1) || (.5, .5)) = ln(1 / (.5 + eps))
    eps = 1e-6
    expected = (0.5 * math.log(0.5 / (1 + eps)) + 0.5 * math.log(0.5 / eps) + math.log(1 / (0.5 + eps))) / 2
    assert kl_divergence(reference, generated) == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------------------------- CLAP


def test_clap_extractor_matches_the_encoder():
    encoder = stand_in_clap()
    extractor = ClapExtractor(encoder)
    assert isinstance(extractor, EmbeddingExtractor)
    assert (extractor.name, extractor.sample_rate, extractor.dim) == ("clap-stand-in", 48_000, 512)
    wav = torch.randn(3, 1, 48_000, generator=torch.Generator().manual_seed(3))
    emb = extractor.embed(wav)
    torch.testing.assert_close(emb, encoder.embed_audio(wav, 48_000), rtol=0, atol=0)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    assert extractor.fingerprint == ClapExtractor(stand_in_clap()).fingerprint
    with pytest.raises(TypeError, match="ClapEncoder"):
        ClapExtractor(object())


# -------------------------------------------------------------------------------------------- cache


def test_fingerprint_follows_the_weights():
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    same = torch.nn.Linear(3, 2)
    same.load_state_dict(layer.state_dict())
    assert weights_fingerprint(layer) == weights_fingerprint(same)
    with torch.no_grad():
        same.bias[0] += 1e-6
    assert weights_fingerprint(layer) != weights_fingerprint(same)
    assert len(weights_fingerprint(layer)) == 16
    weight = layer.weight.detach()  # the same bytes under another name, shape or dtype differ too
    prints = {weights_fingerprint(w) for w in ({"a": weight}, {"b": weight}, {"a": weight.reshape(3, 2)},
                                                {"a": weight.view(torch.int32)})}
    assert len(prints) == 4


class CountingExtractor:
    """A cheap extractor that records how often it runs and what it was given."""

    name = "counting"
    sample_rate = 8_000
    dim = 3

    def __init__(self, fingerprint: str = "v1") -> None:
        self.fingerprint = fingerprint
        self.calls = 0
        self.lengths: list[int] = []

    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.lengths.append(wav.shape[-1])
        x = wav[:, 0]
        return torch.stack([x.mean(-1), x.square().mean(-1), x.abs().amax(-1)], dim=-1)


def _noise_clip() -> torch.Tensor:
    return 0.1 * torch.randn(4_000, generator=torch.Generator().manual_seed(4))


@pytest.fixture
def audio_files(tmp_path):
    folder = tmp_path / "audio"
    files = [
        write_audio(folder / "tone.wav", _tone(440.0, 0.5, 16_000), 16_000),
        write_audio(folder / "stereo.flac", torch.stack([_tone(220.0, 0.25, 8_000), torch.zeros(2_000)]),
                    8_000),
        write_audio(folder / "noise.wav", _noise_clip(), 8_000),
    ]
    return files


def _recomputed(path, extractor) -> torch.Tensor:
    """The embedding of ``path`` computed without the cache: read, channels averaged, resampled."""
    wav_CT, rate = load_audio(path)
    with torch.no_grad():
        return extractor.embed(resample(to_mono(wav_CT[None]), rate, extractor.sample_rate))[0]


class LinearExtractor(torch.nn.Module):
    """An extractor with weights, whose fingerprint is that of its weights (as VGGish's is)."""

    name = "linear"
    sample_rate = 8_000
    dim = 3

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, 3)
        self.calls = 0

    @property
    def fingerprint(self) -> str:
        return weights_fingerprint(self)

    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        x = wav[:, 0]
        return self.proj(torch.stack([x.mean(-1), x.square().mean(-1), x.abs().amax(-1)], dim=-1))


def test_cached_embeddings_equal_recomputed_ones(audio_files, tmp_path):
    extractor = CountingExtractor()
    first = EmbeddingCache(tmp_path / "cache").embed_files(audio_files, extractor)
    assert extractor.lengths == [4_000, 2_000, 4_000]  # read at 8 kHz: the 16-kHz file is resampled
    assert float(first[1, 2]) == pytest.approx(0.25, abs=0.01)  # stereo averaged: peak 0.5 / 2
    again = EmbeddingCache(tmp_path / "cache")
    from_disk = again.embed_files(audio_files, extractor)
    assert extractor.calls == 3 and (again.hits, again.misses) == (3, 0)  # read back, not recomputed
    expected = torch.stack([_recomputed(f, CountingExtractor()) for f in audio_files])
    torch.testing.assert_close(from_disk, expected, rtol=0, atol=0)
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    assert not list((tmp_path / "cache").rglob("*.part*"))  # atomic writes leave no temporaries


def test_a_changed_file_or_changed_weights_are_never_served_stale(audio_files, tmp_path):
    torch.manual_seed(0)
    cache, extractor = EmbeddingCache(tmp_path / "cache"), LinearExtractor()
    first = cache.embed_file(audio_files[0], extractor)
    torch.testing.assert_close(first, _recomputed(audio_files[0], extractor), rtol=0, atol=0)
    renamed = shutil.copy(audio_files[0], tmp_path / "renamed.wav")
    torch.testing.assert_close(cache.embed_file(renamed, extractor), first, rtol=0, atol=0)
    assert extractor.calls == 1 + 1  # + the recomputation above: same bytes, same entry

    write_audio(renamed, _tone(880.0, 0.5, 16_000), 16_000)  # the file changes under its name
    edited = cache.embed_file(renamed, extractor)
    torch.testing.assert_close(edited, _recomputed(renamed, extractor), rtol=0, atol=0)
    assert not torch.equal(edited, first)

    bias = extractor.proj.bias.detach().clone()
    with torch.no_grad():
        extractor.proj.bias += 1.0  # the weights change in place
    retrained = cache.embed_file(audio_files[0], extractor)
    torch.testing.assert_close(retrained, _recomputed(audio_files[0], extractor), rtol=0, atol=0)
    torch.testing.assert_close(retrained, first + 1.0)
    with torch.no_grad():
        extractor.proj.bias.copy_(bias)  # back to the first weights: their entry is still there
    calls = extractor.calls
    torch.testing.assert_close(cache.embed_file(audio_files[0], extractor), first, rtol=0, atol=0)
    assert extractor.calls == calls
    assert cache.entry_path(audio_files[0], extractor).parent.name == f"linear-{extractor.fingerprint}"


def test_cache_recomputes_a_damaged_entry(audio_files, tmp_path, caplog):
    cache, extractor = EmbeddingCache(tmp_path / "cache"), CountingExtractor()
    value = cache.embed_file(audio_files[2], extractor)
    cache.entry_path(audio_files[2], extractor).write_bytes(b"not safetensors")
    with caplog.at_level(logging.WARNING, logger="aar.metrics.cache"):
        torch.testing.assert_close(cache.embed_file(audio_files[2], extractor), value)
    assert extractor.calls == 2 and "unreadable cache entry" in caplog.text


def test_cache_frames_and_errors(audio_files, tmp_path, vggish_file):
    cache = EmbeddingCache(tmp_path / "cache")
    with pytest.raises(TypeError, match="embed_frames"):
        cache.embed_file(audio_files[0], CountingExtractor(), frames=True)
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        cache.embed_file(tmp_path / "missing.wav", CountingExtractor())
    with pytest.raises(ValueError, match="empty"):
        cache.embed_files([], CountingExtractor())
    frames = cache.embed_files(audio_files[:1], vggish_file[0], frames=True)
    assert frames.shape == (1, 128)  # 0.5 s is padded to one 0.96-s example
    entry = cache.entry_path(audio_files[0], vggish_file[0], frames=True)
    assert entry.is_file() and entry.parent.name == f"vggish-{vggish_file[0].fingerprint}"
    assert frechet_distance(frames.repeat(3, 1) + torch.randn(3, 128), frames.repeat(3, 1)) > 0


# ----------------------------------------------------------------------------- docs/evaluation.md


def test_evaluation_doc_snippets(vggish_file, panns_file, audio_files, tmp_path, monkeypatch):
    """The Python blocks of docs/evaluation.md run as written (the networks load from test files)."""
    import re

    doc = Path(__file__).resolve().parents[1] / "docs" / "evaluation.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    assert len(blocks) == 2
    namespace: dict = {}
    exec(compile(blocks[0], "evaluation.md[metrics]", "exec"), namespace)
    assert namespace["mel"].shape == namespace["stft"].shape == (4,)
    assert 38 < float(namespace["sdr"].mean()) < 42
    assert 15 < namespace["fd"] < 20
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(VGGish, "from_pretrained", classmethod(lambda cls, path: vggish_file[0]))
    monkeypatch.setattr(PANNsCNN14, "from_pretrained", classmethod(lambda cls, path: panns_file[0]))
    namespace = {
        "reference_files": audio_files[:2],
        "generated_files": audio_files[1:],
        "generated_batch": 0.1 * torch.randn(2, 1, 32_000, generator=torch.Generator().manual_seed(5)),
    }
    exec(compile(blocks[1], "evaluation.md[networks]", "exec"), namespace)
    assert namespace["real"].shape == (2, 128) and namespace["fad"] > 0
    probs = namespace["cnn14"].logits(namespace["generated_batch"]).softmax(-1).double()
    mean_kl = (torch.special.xlogy(probs, probs) - torch.special.xlogy(probs, probs.mean(0))).sum(-1).mean()
    assert namespace["isc"] == pytest.approx(math.exp(float(mean_kl)), rel=1e-9)  # one split of two clips
    assert namespace["isc"] > 1  # two clips that the classifier does not score alike
    assert namespace["cache"].misses == 3 and namespace["cache"].hits == 1  # stereo.flac is in both sets
