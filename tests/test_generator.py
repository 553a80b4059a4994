"""AARGenerator invariants on small random models: caching, batching, seeds, loading, bad input."""

import shutil

import pytest
import torch
from conftest import AAR_PTH, SAT_PTH, TINY_SAT, tiny_generator
from official_layout import populate_hub_cache, save_aar_official

from aar import AARGenerator, SATTokenizer
from aar.errors import CheckpointError
from aar.generation.sampling import guidance_scale


def _clap(batch, seed=0):
    v = torch.randn(batch, 512, generator=torch.Generator().manual_seed(seed))
    return v / v.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("depth, heads, cfg", [(1, 1, 0.0), (2, 2, 3.0), (3, 4, 10.0)])
def test_cached_generation_matches_full_forward(depth, heads, cfg):
    """Greedy codes equal the argmax of the teacher-forced, guided logits at every scale."""
    gen = tiny_generator(depth=depth, heads=heads, peaky=True)
    clap = _clap(3)
    codes = gen.generate_codes(clap, cfg=cfg, top_k=1, top_p=None)
    cond, uncond = gen.logits(codes, clap), gen.logits(codes)
    start = 0
    for si, s in enumerate(gen.config.scales):
        t = guidance_scale(cfg, si, 16)
        mixed = (1 + t) * cond[:, start:start + s] - t * uncond[:, start:start + s]
        assert torch.equal(mixed.argmax(-1), codes[si][:, 0]), f"scale {si}"
        start += s


def test_batch_equals_single_runs():
    gen = tiny_generator(peaky=True)
    clap = _clap(4)
    batch = gen.generate_codes(clap, top_k=1)
    for b in range(4):
        single = gen.generate_codes(clap[b], top_k=1)
        assert all(torch.equal(batch[i][b:b + 1], single[i]) for i in range(16))


def test_seeds():
    gen = tiny_generator(peaky=True)
    clap = _clap(2)
    a = gen.generate(clap, seed=7, top_k=None, top_p=None)
    b = gen.generate(clap, seed=7, top_k=None, top_p=None)
    c = gen.generate(clap, seed=8, top_k=None, top_p=None)
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = torch.Generator().manual_seed(7)
    torch.testing.assert_close(gen.generate(clap, generator=g, top_k=None, top_p=None), a, atol=0, rtol=0)


def test_top_k_one_is_argmax_with_cfg_zero():
    gen = tiny_generator(peaky=True)
    clap = _clap(2)
    codes = gen.generate_codes(clap, cfg=0.0, top_k=1, seed=3)
    logits = gen.logits(codes, clap)
    assert torch.equal(logits.argmax(-1), torch.cat(list(codes), dim=-1)[:, 0])


def test_single_vector_and_numpy_condition():
    gen = tiny_generator(peaky=True)
    clap = _clap(1)
    a = gen.generate_codes(clap[0], seed=1)
    b = gen.generate_codes(clap.numpy(), seed=1)
    assert a.batch_size == 1 and a.equal(b)


def test_kv_cache_is_reset_after_an_exception(monkeypatch):
    gen = tiny_generator(peaky=True)
    caches = []
    original = gen.transformer.kv_cache

    def recording():
        caches.append(original())
        return caches[-1]

    monkeypatch.setattr(gen.transformer, "kv_cache", recording)
    calls = {"n": 0}
    real_residual = gen.tokenizer.quantizer.scale_residual

    def failing(si, idx):
        calls["n"] += 1
        if si == 5:
            raise KeyboardInterrupt
        return real_residual(si, idx)

    monkeypatch.setattr(gen.tokenizer.quantizer, "scale_residual", failing)
    with pytest.raises(KeyboardInterrupt):
        gen.generate_codes(_clap(1), seed=0)
    assert caches[0].num_scales == 0 and caches[0].num_tokens == 0
    monkeypatch.setattr(gen.tokenizer.quantizer, "scale_residual", real_residual)
    codes = gen.generate_codes(_clap(1), seed=0)
    assert len(caches) == 2 and codes.batch_size == 1


def test_native_round_trip(tmp_path):
    gen = tiny_generator(peaky=True)
    folder = gen.save_pretrained(tmp_path / "gen")
    assert (folder / "tokenizer" / "model.safetensors").is_file()
    again = AARGenerator.from_pretrained(folder)
    clap = _clap(2)
    assert gen.generate_codes(clap, seed=5).equal(again.generate_codes(clap, seed=5))
    codes = gen.generate_codes(clap, seed=5)
    assert torch.equal(gen.logits(codes, clap), again.logits(codes, clap))
    # A generator folder also serves as a tokenizer source.
    assert SATTokenizer.from_pretrained(folder).config == gen.tokenizer.config


@pytest.mark.parametrize("prefix", ["", "module."])
def test_official_layout_of_other_depths(tmp_path, prefix):
    gen = tiny_generator(depth=3, heads=4, peaky=True)
    save_aar_official(gen, tmp_path / "aar.pth", prefix=prefix)
    loaded = AARGenerator.from_pretrained(tmp_path / "aar.pth", tokenizer=gen.tokenizer)
    assert loaded.config == gen.config
    clap = _clap(2)
    codes = gen.generate_codes(clap, seed=2)
    torch.testing.assert_close(loaded.logits(codes, clap), gen.logits(codes, clap), atol=1e-5, rtol=0)


def test_hub_official_repo_offline(tmp_path, reference):
    populate_hub_cache(tmp_path / "cache", "qiuk6/AAR",
                       {"AAR_d16_bs2048.pth": AAR_PTH, "SAT_d128_lat128.pth": SAT_PTH})
    gen = AARGenerator.from_pretrained("qiuk6/AAR", cache_dir=tmp_path / "cache")
    codes = gen.generate_codes(reference["clap"], cfg=3.0, top_k=1, top_p=None)
    assert all(torch.equal(codes[i][:, 0], reference[f"greedy.codes.{i}"]) for i in range(16))


def test_hub_native_repo_offline(tmp_path):
    gen = tiny_generator(peaky=True)
    folder = gen.save_pretrained(tmp_path / "gen")
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    populate_hub_cache(tmp_path / "cache", "someone/aar-tiny", files)
    loaded = AARGenerator.from_pretrained("someone/aar-tiny", cache_dir=tmp_path / "cache")
    assert loaded.generate_codes(_clap(1), seed=0).equal(gen.generate_codes(_clap(1), seed=0))


def test_official_file_finds_its_sibling_tokenizer(tmp_path):
    shutil.copy(AAR_PTH, tmp_path / "AAR_d16_bs2048.pth")
    shutil.copy(SAT_PTH, tmp_path / "SAT_d128_lat128.pth")
    gen = AARGenerator.from_pretrained(tmp_path / "AAR_d16_bs2048.pth")
    assert gen.tokenizer.config.latent_dim == 16
    shutil.copy(AAR_PTH, tmp_path / "alone.pth")
    (tmp_path / "SAT_d128_lat128.pth").unlink()
    with pytest.raises(ValueError, match="pass tokenizer="):
        AARGenerator.from_pretrained(tmp_path / "alone.pth")


def test_mismatched_tokenizer_is_refused():
    with pytest.raises(CheckpointError, match="does not fit the tokenizer"):
        AARGenerator.from_pretrained(AAR_PTH, tokenizer=SATTokenizer(TINY_SAT))
    with pytest.raises(CheckpointError, match="is a tokenizer .*, but a generator .* was wanted"):
        AARGenerator.from_pretrained(tmp := SATTokenizer(TINY_SAT).save_pretrained(
            __import__("tempfile").mkdtemp()))
    assert tmp.exists()


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(clap_emb=torch.zeros(511)), ValueError, r"\(512,\) or \(B, 512\), got \(1, 511\)"),
        (dict(clap_emb=torch.zeros(2, 3, 512)), ValueError, "got \\(2, 3, 512\\)"),
        (dict(clap_emb=torch.full((512,), float("nan"))), ValueError, "NaN or Inf"),
        (dict(clap_emb=torch.zeros(512, dtype=torch.long)), TypeError, "floating point"),
        (dict(clap_emb=[0.0] * 512), TypeError, "torch.Tensor or numpy array"),
        (dict(), ValueError, "exactly one of"),
        (dict(top_k=-1), ValueError, "top_k"),
        (dict(top_k=1.5), TypeError, "top_k.*got 1.5"),
        (dict(top_p=0.0), ValueError, "top_p"),
        (dict(top_p=1.5), ValueError, "got 1.5"),
        (dict(temperature=0.0), ValueError, "temperature"),
        (dict(temperature=-1), ValueError, "temperature"),
        (dict(seed="1"), TypeError, "seed"),
        (dict(seed=1.5), TypeError, "seed"),
        (dict(seed=1, generator=torch.Generator()), ValueError, "not both"),
        (dict(cfg=float("nan")), ValueError, "cfg"),
    ],
)
def test_bad_generation_arguments(kwargs, error, match):
    gen = tiny_generator(depth=1, heads=1, peaky=True)
    if "clap_emb" not in kwargs and kwargs:
        kwargs = {"clap_emb": _clap(1), **kwargs}
    with pytest.raises(error, match=match):
        gen.generate_codes(**kwargs)


def test_bad_scoring_arguments():
    gen = tiny_generator(depth=1, heads=1, peaky=True)
    codes = gen.generate_codes(_clap(2), seed=0)
    with pytest.raises(ValueError, match="batch 3"):
        gen.logits(codes, _clap(3))
    two_windows = [torch.cat([c, c], dim=1) for c in codes]
    with pytest.raises(ValueError, match="W=2"):
        gen.log_likelihood(two_windows, _clap(2))
    bad = list(codes)
    bad[0] = bad[0] + 256
    with pytest.raises(ValueError, match="allowed"):
        gen.logits(bad)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("seconds", [None, 1.5])
def test_per_row_seeds_reproduce_single_calls(seconds):
    """Each row of a batch with ``seed=[...]`` draws from its own stream, as a single call does, and
    long generation carries it across windows: every token agrees (each row is computed as if
    alone), where one stream for the whole batch agrees by chance only (about 1 token in 16 here)."""
    from aar.generation.long_generation import generate_long

    gen = tiny_generator()
    clap = torch.randn(3, 512, generator=torch.Generator().manual_seed(2))
    clap = clap / clap.norm(dim=1, keepdim=True)

    def tokens(rows, seed):  # (B, all tokens of every window), and the audio (B, 1, T)
        if seconds is None:
            windows, audio = [gen.generate_codes(rows, seed=seed)], gen.generate(rows, seed=seed)
        else:
            out = generate_long(gen, rows, seconds=seconds, overlap=0.25, seed=seed)
            windows, audio = out.windows, out.audio
        return torch.cat([c.reshape(c.shape[0], -1) for w in windows for c in w], dim=1), audio

    (batch, audio), (shared, _) = tokens(clap, [5, 6, 7]), tokens(clap, 5)
    for b, seed in enumerate((5, 6, 7)):
        alone, alone_audio = tokens(clap[b:b + 1], seed)
        assert torch.equal(batch[b], alone[0]) and torch.equal(audio[b], alone_audio[0])
    assert (batch[1:] == shared[1:]).float().mean() < 0.5
    with pytest.raises(ValueError, match="2 seeds or generators for a batch of 3"):
        gen.generate(clap, seed=[1, 2])
