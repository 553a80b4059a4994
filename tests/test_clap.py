"""ClapEncoder: both backends with small stand-in models, loading paths, windowing, validation.

laion-clap cannot be imported offline (it downloads tokenizers on import), so its backend is tested
against a stand-in ``laion_clap`` module with the same API names; the transformers backend runs a
tiny ``ClapModel`` saved to a temporary folder.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from payload import Payload
from torch import nn

from aar.conditioning.backends import LAION_FILENAME, read_laion_state_dict
from aar.conditioning.clap import ClapEncoder
from aar.errors import CheckpointError, pip_command

MAX = 480_000  # laion-clap's clip length (10 s at 48 kHz)


# ---------------------------------------------------------------------------------------------
# The laion_clap stand-in


class TinyLaionModel(nn.Module):
    """Small model with laion-clap's outer names: audio via chunk RMS, text via byte embeddings."""

    def __init__(self):
        super().__init__()
        self.audio_branch = nn.Linear(64, 32)
        self.audio_projection = nn.Linear(32, 512)
        self.text_branch = nn.Module()
        self.text_branch.embeddings = nn.Module()
        self.text_branch.embeddings.word_embeddings = nn.Embedding(256, 32)
        self.text_projection = nn.Linear(32, 512)

    def embed_audio(self, x_NT: torch.Tensor) -> torch.Tensor:
        rows = []
        for clip in x_NT:  # laion-clap repeat-pads every clip to 480000 samples
            clip = clip.repeat(MAX // clip.shape[0])
            rows.append(F.pad(clip, (0, MAX - clip.shape[0])))
        chunks = torch.stack(rows).reshape(len(rows), 32, -1)
        feats = torch.cat([chunks.pow(2).mean(-1).sqrt(), chunks.mean(-1)], dim=-1)
        return F.normalize(self.audio_projection(torch.tanh(self.audio_branch(feats))), dim=-1)

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for text in texts:
            ids = torch.tensor(list(text.encode()) or [0], device=self.text_projection.weight.device)
            rows.append(self.text_branch.embeddings.word_embeddings(ids).mean(0))
        return F.normalize(self.text_projection(torch.stack(rows)), dim=-1)


class FakeClapModule:
    """Mirrors ``laion_clap.CLAP_Module``'s API names; records what it receives."""

    instances: list[FakeClapModule] = []

    def __init__(self, enable_fusion=False, device=None, amodel="HTSAT-tiny", tmodel="roberta"):
        self.init_kwargs = {"enable_fusion": enable_fusion, "device": device, "amodel": amodel}
        torch.manual_seed(1234)  # differs from the checkpoint, so loading must change the weights
        self.model = TinyLaionModel().to(device)
        self.audio_calls: list[tuple[int, ...]] = []
        self.text_calls: list[int] = []
        FakeClapModule.instances.append(self)

    def load_ckpt(self, *args, **kwargs):
        raise AssertionError("load_ckpt must never be called: its loader runs pickled code")

    def get_audio_embedding_from_data(self, x, use_tensor=False):
        assert use_tensor is True, "use_tensor=False would round the audio through int16"
        assert isinstance(x, torch.Tensor) and x.ndim == 2
        assert x.shape[1] <= MAX, "laion-clap would crop this clip at a random offset"
        self.audio_calls.append(tuple(x.shape))
        self.model.eval()
        return self.model.embed_audio(x)

    def get_text_embedding(self, x, tokenizer=None, use_tensor=False):
        assert use_tensor is True
        if len(x) < 2:  # laion-clap squeezes the batch axis of a single text (LAION-AI/CLAP#85)
            raise ValueError("not enough values to unpack (expected 2, got 1)")
        self.text_calls.append(len(x))
        return self.model.embed_text(list(x))


@pytest.fixture
def fake_laion(monkeypatch):
    FakeClapModule.instances = []
    module = types.ModuleType("laion_clap")
    module.CLAP_Module = FakeClapModule
    monkeypatch.setitem(sys.modules, "laion_clap", module)
    return FakeClapModule


def reference_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return TinyLaionModel().state_dict()


def write_checkpoint(path: Path, extra=None, protocol: int = 2) -> Path:
    """A laion-clap style file: DataParallel names, a stale position_ids buffer, numpy scalars."""
    state = {f"module.{k}": v for k, v in reference_state().items()}
    state["module.text_branch.embeddings.position_ids"] = torch.arange(77)[None]
    payload = {"epoch": 15, "state_dict": state, "best_score": np.float64(89.98), "step": np.int64(7)}
    payload.update(extra or {})
    torch.save(payload, path, pickle_protocol=protocol)
    return path


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return write_checkpoint(tmp_path / LAION_FILENAME)


@pytest.fixture
def encoder(fake_laion, checkpoint) -> ClapEncoder:
    return ClapEncoder.from_pretrained(checkpoint)


def last_module() -> FakeClapModule:
    return FakeClapModule.instances[-1]


def assert_unit(emb: torch.Tensor, batch: int) -> None:
    assert emb.shape == (batch, 512) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(batch), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# laion-clap loading


def test_laion_local_checkpoint_loads_strictly(encoder):
    module = last_module()
    assert module.init_kwargs == {"enable_fusion": False, "device": torch.device("cpu"),
                                  "amodel": "HTSAT-base"}
    loaded = module.model.state_dict()
    for key, value in reference_state().items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
    assert encoder.backend == "laion-clap" and encoder.device == torch.device("cpu")
    assert "laion-clap" in repr(encoder)


def test_laion_folder_and_filename(fake_laion, tmp_path):
    write_checkpoint(tmp_path / "other.pt")
    ClapEncoder.from_pretrained(tmp_path, filename="other.pt")
    with pytest.raises(FileNotFoundError, match="no CLAP checkpoint"):
        ClapEncoder.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        ClapEncoder.from_pretrained(tmp_path / "missing.pt")


def populate_hub_cache(cache: Path, commit: str = "a" * 40) -> str:
    repo = cache / "models--lukewys--laion_clap"
    (repo / "snapshots" / commit).mkdir(parents=True)
    write_checkpoint(repo / "snapshots" / commit / LAION_FILENAME)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return commit


def test_laion_hub_cache_offline(fake_laion, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    commit = populate_hub_cache(tmp_path / "hub")
    clap = ClapEncoder.from_pretrained(cache_dir=tmp_path / "hub")
    assert_unit(clap.embed_text("a dog barking"), 1)
    ClapEncoder.from_pretrained("lukewys/laion_clap", cache_dir=tmp_path / "hub", revision=commit)
    with pytest.raises(FileNotFoundError, match="not in the local cache"):
        ClapEncoder.from_pretrained(cache_dir=tmp_path / "hub", filename="630k-best.pt")


def test_laion_hub_cache_local_files_only(fake_laion, tmp_path):
    populate_hub_cache(tmp_path / "hub")
    ClapEncoder.from_pretrained(cache_dir=tmp_path / "hub", local_files_only=True)
    with pytest.raises(FileNotFoundError):
        ClapEncoder.from_pretrained(cache_dir=tmp_path / "empty", local_files_only=True)


@pytest.mark.parametrize("protocol", [2, 4])
def test_checkpoint_with_pickled_object_is_refused(fake_laion, tmp_path, protocol):
    marker = tmp_path / "marker.txt"
    path = write_checkpoint(tmp_path / "evil.pt", {"hook": Payload(marker)}, protocol)
    with pytest.raises(CheckpointError, match="refused"):
        ClapEncoder.from_pretrained(path)
    assert not marker.exists()


def test_protocol_4_checkpoint_with_numpy_scalars_loads(tmp_path):
    path = write_checkpoint(tmp_path / "p4.pt", protocol=4)
    state = read_laion_state_dict(path)
    assert "text_branch.embeddings.position_ids" in state  # dropped later, against the model
    for key, value in reference_state().items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)


def test_numpy_1_checkpoint_reads_weights_only(tmp_path, caplog):
    """Files written under numpy 1 name its scalar reconstructor ``numpy.core.multiarray.scalar``."""
    buffer = io.BytesIO()
    payload = {"state_dict": {"module.w": torch.arange(3.0)}, "best": np.float64(2.5)}
    torch.save(payload, buffer, _use_new_zipfile_serialization=False)  # no CRC: bytes can be edited
    raw = buffer.getvalue()
    assert raw.count(b"numpy._core.multiarray") == 1 or raw.count(b"numpy.core.multiarray") == 1
    (tmp_path / "np1.pt").write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    with caplog.at_level(logging.DEBUG, logger="aar.conditioning.backends"):
        state = read_laion_state_dict(tmp_path / "np1.pt")
    assert list(state) == ["w"] and "allowlist reader" not in caplog.text


def test_checkpoint_without_state_dict_is_refused(tmp_path):
    torch.save({"state_dict": {"a": 3}}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="not a tensor"):
        read_laion_state_dict(tmp_path / "bad.pt")


def test_missing_laion_clap_names_the_extra(monkeypatch, checkpoint):
    monkeypatch.setitem(sys.modules, "laion_clap", None)
    with pytest.raises(ImportError, match=re.escape(pip_command("clap"))):
        ClapEncoder.from_pretrained(checkpoint)


def test_missing_transformers_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=re.escape(pip_command("clap"))):
        ClapEncoder.from_pretrained(tmp_path, backend="transformers")


# ---------------------------------------------------------------------------------------------
# Audio


def test_embed_audio_unit_vectors_and_deterministic(encoder):
    torch.manual_seed(0)
    wav = 0.1 * torch.randn(3, 1, 48_000)
    emb = encoder.embed_audio(wav, 48_000)
    assert_unit(emb, 3)
    torch.testing.assert_close(encoder.embed_audio(wav, 48_000), emb, rtol=0, atol=0)
    torch.testing.assert_close(encoder.embed_audio(wav.numpy(), 48_000), emb, rtol=0, atol=0)
    torch.testing.assert_close(encoder.embed_audio(wav[1, 0], 48_000), emb[1:2], rtol=0, atol=1e-6)
    assert not torch.allclose(emb[0], emb[1])


def test_stereo_is_averaged(encoder):
    torch.manual_seed(0)
    stereo = 0.1 * torch.randn(2, 2, 30_000)
    torch.testing.assert_close(
        encoder.embed_audio(stereo, 48_000), encoder.embed_audio(stereo.mean(1, keepdim=True), 48_000),
        rtol=0, atol=1e-6,
    )


@pytest.mark.parametrize(("sample_rate", "length", "expected"), [
    (16_000, 16_000, 48_000), (44_100, 88_200, 96_000), (24_000, 7, 14),
])
def test_audio_is_resampled_to_48k(encoder, sample_rate, length, expected):
    encoder.embed_audio(torch.zeros(length).uniform_(-0.1, 0.1), sample_rate)
    assert last_module().audio_calls == [(1, expected)]


def test_long_clip_is_mean_of_consecutive_windows(encoder):
    torch.manual_seed(0)
    wav = 0.1 * torch.randn(2, 1, 2 * MAX + 100_000)
    emb = encoder.embed_audio(wav, 48_000)
    assert last_module().audio_calls == [(4, MAX), (2, 100_000)]
    module = last_module()
    for b in range(2):
        windows = [wav[b, :, :MAX], wav[b, :, MAX : 2 * MAX], wav[b, :, 2 * MAX :]]
        per_window = torch.cat([module.get_audio_embedding_from_data(w, use_tensor=True) for w in windows])
        torch.testing.assert_close(emb[b], F.normalize(per_window.mean(0), dim=0), rtol=0, atol=1e-6)


def test_short_tail_is_left_out_after_full_windows(encoder):
    torch.manual_seed(0)
    wav = 0.1 * torch.randn(2 * MAX + 47_999)
    emb = encoder.embed_audio(wav, 48_000)
    assert last_module().audio_calls == [(2, MAX)]
    torch.testing.assert_close(emb, encoder.embed_audio(wav[: 2 * MAX], 48_000), rtol=0, atol=1e-6)


def test_short_clip_is_one_window(encoder):
    encoder.embed_audio(torch.full((1_000,), 0.05), 48_000)
    encoder.embed_audio(torch.full((MAX,), 0.05), 48_000)
    assert last_module().audio_calls == [(1, 1_000), (1, MAX)]


def test_batch_size_splits_calls_not_results(encoder):
    torch.manual_seed(0)
    wav = 0.1 * torch.randn(3 * MAX)
    emb = encoder.embed_audio(wav, 48_000, batch_size=2)
    assert last_module().audio_calls == [(2, MAX), (1, MAX)]
    torch.testing.assert_close(emb, encoder.embed_audio(wav, 48_000), rtol=0, atol=1e-6)


def test_int16_pcm_is_scaled(encoder):
    pcm = (torch.linspace(-1, 1, 4_800) * 3_000).to(torch.int16)
    torch.testing.assert_close(
        encoder.embed_audio(pcm, 48_000), encoder.embed_audio(pcm.float() / 32768, 48_000),
        rtol=0, atol=1e-6,
    )


@pytest.mark.parametrize(("wav", "sample_rate", "error", "match"), [
    (torch.tensor([0.0, float("nan")]), 48_000, ValueError, "NaN"),
    (torch.zeros(1, 0), 48_000, ValueError, "empty"),
    (torch.zeros(1, 1, 1, 10), 48_000, ValueError, "4 dims"),
    (torch.zeros(10), 0, ValueError, "positive"),
    (torch.zeros(10), -16_000, ValueError, "-16000"),
    ([0.0, 0.1], 48_000, TypeError, "list"),
])
def test_embed_audio_rejects_bad_input(encoder, wav, sample_rate, error, match):
    with pytest.raises(error, match=match):
        encoder.embed_audio(wav, sample_rate)


def test_bad_backend_and_batch_size(encoder, checkpoint):
    with pytest.raises(ValueError, match="laion-clap"):
        ClapEncoder.from_pretrained(checkpoint, backend="clip")
    with pytest.raises(ValueError, match="batch_size"):
        encoder.embed_audio(torch.zeros(10), 48_000, batch_size=0)


# ---------------------------------------------------------------------------------------------
# Text


def test_embed_text(encoder):
    pair = encoder.embed_text(["a dog barking", "rain on a tin roof"])
    assert_unit(pair, 2)
    single = encoder.embed_text("a dog barking")  # the stand-in fails on one text, as laion-clap does
    assert_unit(single, 1)
    torch.testing.assert_close(single, pair[:1], rtol=0, atol=1e-6)
    torch.testing.assert_close(encoder.embed_text(("a dog barking",)), single, rtol=0, atol=0)
    assert_unit(encoder.embed_text([f"text {i}" for i in range(5)], batch_size=2), 5)
    assert last_module().text_calls[-3:] == [2, 2, 2]  # chunks of 2, 2 and a doubled single


@pytest.mark.parametrize(("text", "error", "match"), [
    ([], ValueError, "empty"),
    (["ok", 3], TypeError, "item 1 is int"),
    (None, TypeError, "NoneType"),
    (b"bytes", TypeError, "bytes"),
])
def test_embed_text_rejects_bad_input(encoder, text, error, match):
    with pytest.raises(error, match=match):
        encoder.embed_text(text)


# ---------------------------------------------------------------------------------------------
# transformers backend


def write_tiny_transformers_clap(folder: Path, fusion: bool = False) -> Path:
    """A tiny ClapModel + ClapProcessor (real feature extractor, small byte-level BPE tokenizer)."""
    transformers = pytest.importorskip("transformers")
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    symbols = [chr(c) for c in range(33, 127)] + ["\u0120", "\u0120a"]  # \u0120 is the space byte
    vocab = {tok: i for i, tok in enumerate(specials + symbols)}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n\u0120 a\n")
    tokenizer = transformers.RobertaTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    extractor = transformers.ClapFeatureExtractor(truncation="fusion" if fusion else "rand_trunc")
    audio = {"hidden_size": 16, "patch_embeds_hidden_size": 8, "depths": [1, 1],
             "num_attention_heads": [1, 2], "window_size": 8, "spec_size": 256, "num_mel_bins": 64}
    if fusion:
        audio.update(enable_fusion=True, fusion_type="aff_2d")
    config = transformers.ClapConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 16, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "intermediate_size": 32,
                     "max_position_embeddings": 90, "pad_token_id": 1},
        audio_config=audio,
        projection_dim=512,
    )
    torch.manual_seed(0)
    transformers.ClapModel(config).save_pretrained(folder / "model")
    transformers.ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(
        folder / "model"
    )
    return folder / "model"


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory) -> Path:
    return write_tiny_transformers_clap(tmp_path_factory.mktemp("clap_hf"))


@pytest.fixture(scope="module")
def hf_encoder(tiny_hf) -> ClapEncoder:
    return ClapEncoder.from_pretrained(tiny_hf, backend="transformers")


def test_transformers_audio_matches_direct_model_call(hf_encoder, tiny_hf):
    from transformers import ClapModel, ClapProcessor

    torch.manual_seed(0)
    wav = 0.1 * torch.randn(2, 1, 24_000)
    emb = hf_encoder.embed_audio(wav, 24_000)
    assert_unit(emb, 2)
    assert hf_encoder.backend == "transformers"
    torch.testing.assert_close(hf_encoder.embed_audio(wav, 24_000), emb, rtol=0, atol=0)

    model, processor = ClapModel.from_pretrained(tiny_hf).eval(), ClapProcessor.from_pretrained(tiny_hf)
    wav_48k = [w.numpy() for w in hf_encoder_resample(wav)]
    inputs = processor.feature_extractor(wav_48k, sampling_rate=48_000, return_tensors="pt")
    with torch.no_grad():
        out = model.get_audio_features(**inputs)
    direct = out if isinstance(out, torch.Tensor) else out.pooler_output
    torch.testing.assert_close(emb, F.normalize(direct, dim=-1), rtol=0, atol=1e-5)


def hf_encoder_resample(wav_B1T: torch.Tensor) -> torch.Tensor:
    from aar.audio import resample

    return resample(wav_B1T, 24_000, 48_000)[:, 0]


def test_transformers_text_and_stereo(hf_encoder):
    texts = ["a cat", "hello world!", "a"]
    emb = hf_encoder.embed_text(texts)
    assert_unit(emb, 3)
    torch.testing.assert_close(hf_encoder.embed_text("a cat"), emb[:1], rtol=0, atol=1e-5)
    torch.testing.assert_close(hf_encoder.embed_text(texts), emb, rtol=0, atol=0)
    stereo = 0.1 * torch.randn(2, 12_000, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        hf_encoder.embed_audio(stereo, 48_000), hf_encoder.embed_audio(stereo.mean(0), 48_000),
        rtol=0, atol=1e-5,
    )


def test_transformers_long_clip_windows(hf_encoder):
    wav = 0.1 * torch.randn(MAX + 60_000, generator=torch.Generator().manual_seed(2))
    emb = hf_encoder.embed_audio(wav, 48_000)
    head = hf_encoder.embed_audio(wav[:MAX], 48_000)
    tail = hf_encoder.embed_audio(wav[MAX:], 48_000)
    torch.testing.assert_close(emb, F.normalize(head + tail, dim=-1), rtol=0, atol=1e-5)


def test_transformers_fusion_extractor_is_deterministic(tmp_path):
    clap = ClapEncoder.from_pretrained(write_tiny_transformers_clap(tmp_path, fusion=True),
                                       backend="transformers")
    wav = 0.1 * torch.randn(4, 1, 9_600, generator=torch.Generator().manual_seed(3))
    first = clap.embed_audio(wav, 48_000)
    for _ in range(3):  # the extractor alone would mark a random clip as "longer" on each call
        torch.testing.assert_close(clap.embed_audio(wav, 48_000), first, rtol=0, atol=0)


def test_transformers_rejects_filename(tiny_hf):
    with pytest.raises(ValueError, match="laion-clap"):
        ClapEncoder.from_pretrained(tiny_hf, backend="transformers", filename="x.pt")


def test_half_precision_input_is_accepted(encoder):
    wav = torch.linspace(-0.5, 0.5, 4_800)
    torch.testing.assert_close(
        encoder.embed_audio(wav.half(), 48_000), encoder.embed_audio(wav.half().float(), 48_000),
        rtol=0, atol=1e-6,
    )
