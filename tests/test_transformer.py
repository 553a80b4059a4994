"""AAR transformer: parity with the official checkpoint, KV-cache and masking invariants."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from aar.config import AARConfig
from aar.loading.official import convert_aar_state_dict
from aar.nn.transformer import AARTransformer

FIXTURES = Path(__file__).parent / "fixtures" / "official_small"

TINY = AARConfig(
    depth=2, embed_dim=64, num_heads=2, latent_dim=8, codebook_size=32, scales=(1, 2, 3, 5)
)


@pytest.fixture(scope="module")
def official() -> tuple[AARTransformer, dict[str, torch.Tensor]]:
    checkpoint = torch.load(FIXTURES / "aar_official.pth", map_location="cpu", weights_only=True)
    model = AARTransformer(AARConfig(depth=2, embed_dim=128, num_heads=2, latent_dim=16))
    model.load_state_dict(convert_aar_state_dict(checkpoint["model_state_dict"]), strict=True)
    return model.eval(), load_file(FIXTURES / "reference.safetensors")


@pytest.fixture()
def tiny() -> AARTransformer:
    torch.manual_seed(0)
    return AARTransformer(TINY).eval()


def _inputs(model: AARTransformer, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    config = model.config
    generator = torch.Generator().manual_seed(1)
    clap_BD = torch.randn(batch, config.cond_dim, generator=generator)
    length = config.tokens_per_window - config.scales[0]
    x_BLLat = torch.randn(batch, length, config.latent_dim, generator=generator)
    return model.condition(clap_BD), x_BLLat


def _stepped_logits(model: AARTransformer, cond_BC: torch.Tensor, x_BLLat: torch.Tensor):
    s0 = model.config.scales[0]
    per_scale = []
    with model.kv_cache() as cache:
        for si, (start, end) in enumerate(model.scale_bounds):
            x_BlLat = None if si == 0 else x_BLLat[:, start - s0 : end - s0]
            per_scale.append(model.step(cache, cond_BC, si, x_BlLat))
    return per_scale


@torch.no_grad()
def test_official_teacher_forced_logits(official):
    model, ref = official
    cond_BC = model.condition(ref["clap"])
    logits_BLV = model(cond_BC, ref["tf_input"])
    assert logits_BLV.shape == ref["tf_logits"].shape == (2, 455, 1024)
    torch.testing.assert_close(logits_BLV, ref["tf_logits"], atol=1e-3, rtol=0)


@torch.no_grad()
def test_official_unconditional_logits(official):
    model, ref = official
    cond_BC = model.condition(model.uncond_clap(2))
    torch.testing.assert_close(model(cond_BC, ref["tf_input"]), ref["tf_logits_uncond"], atol=1e-3, rtol=0)


@torch.no_grad()
def test_official_stepped_logits(official):
    model, ref = official
    cond_BC = model.condition(ref["clap"])
    logits_BLV = torch.cat(_stepped_logits(model, cond_BC, ref["tf_input"]), dim=1)
    torch.testing.assert_close(logits_BLV, ref["tf_logits"], atol=1e-3, rtol=0)


def test_state_dict_names(tiny):
    names = set(tiny.state_dict())
    expected = {
        "pos_start", "pos_1LC", "uncond_embedding", "word_embed.weight", "word_embed.bias",
        "class_emb.fc1.weight", "class_emb.fc2.weight", "lvl_embed.weight",
        "head_nm.ada_lin.1.weight", "head_nm.ada_lin.1.bias", "head.weight", "head.bias",
    }
    for i in range(TINY.depth):
        expected |= {
            f"blocks.{i}.attn.{n}"
            for n in ("scale_mul_1H11", "q_bias", "v_bias", "mat_qkv.weight", "proj.weight", "proj.bias")
        }
        expected |= {f"blocks.{i}.ffn.fc{j}.{p}" for j in (1, 2) for p in ("weight", "bias")}
        expected |= {f"blocks.{i}.ada_lin.1.weight", f"blocks.{i}.ada_lin.1.bias"}
    assert names == expected
    assert "uncond_embedding" not in dict(tiny.named_parameters())
    assert tiny.state_dict()["uncond_embedding"].shape == (1, TINY.cond_dim)


@torch.no_grad()
def test_forward_shape(tiny):
    cond_BC, x_BLLat = _inputs(tiny)
    assert cond_BC.shape == (2, TINY.embed_dim)
    assert tiny(cond_BC, x_BLLat).shape == (2, TINY.tokens_per_window, TINY.codebook_size)


@torch.no_grad()
def test_kv_cache_steps_match_forward(tiny):
    cond_BC, x_BLLat = _inputs(tiny)
    logits_BLV = tiny(cond_BC, x_BLLat)
    per_scale = _stepped_logits(tiny, cond_BC, x_BLLat)
    for (start, end), logits_BlV in zip(tiny.scale_bounds, per_scale):
        assert logits_BlV.shape == (2, end - start, TINY.codebook_size)
        torch.testing.assert_close(logits_BlV, logits_BLV[:, start:end], atol=1e-5, rtol=0)


@torch.no_grad()
def test_block_causal(tiny):
    cond_BC, x_BLLat = _inputs(tiny)
    base_BLV = tiny(cond_BC, x_BLLat)
    s0 = TINY.scales[0]
    for si in range(1, TINY.num_scales):
        start, end = tiny.scale_bounds[si]
        changed = x_BLLat.clone()
        changed[:, start - s0 : end - s0] += 1.0
        logits_BLV = tiny(cond_BC, changed)
        torch.testing.assert_close(logits_BLV[:, :start], base_BLV[:, :start], atol=1e-6, rtol=0)
        assert not torch.allclose(logits_BLV[:, start:end], base_BLV[:, start:end])


@torch.no_grad()
def test_cache_reset_after_exception(tiny):
    cond_BC, _ = _inputs(tiny)
    with pytest.raises(RuntimeError, match="interrupted"):
        with tiny.kv_cache() as cache:
            tiny.step(cache, cond_BC, 0)
            assert cache.num_scales == 1 and cache.num_tokens == TINY.scales[0]
            raise RuntimeError("interrupted")
    assert cache.num_scales == 0 and cache.num_tokens == 0 and cache.batch_size is None
    tiny.step(cache, cond_BC, 0)  # reusable from scale 0


@torch.no_grad()
def test_failed_step_leaves_cache_unchanged(tiny):
    cond_BC, _ = _inputs(tiny)
    cache = tiny.kv_cache()
    tiny.step(cache, cond_BC, 0)
    wrong_BlLat = torch.randn(2, TINY.scales[1], TINY.latent_dim + 1)
    with pytest.raises(ValueError, match="x_BlLat must have shape"):
        tiny.step(cache, cond_BC, 1, wrong_BlLat)
    assert cache.num_scales == 1


@torch.no_grad()
def test_step_argument_errors(tiny):
    cond_BC, _ = _inputs(tiny)
    x_BlLat = torch.randn(2, TINY.scales[1], TINY.latent_dim)
    with tiny.kv_cache() as cache:
        with pytest.raises(ValueError, match="got si=1"):
            tiny.step(cache, cond_BC, 1, x_BlLat)
        with pytest.raises(ValueError, match="x_BlLat=None"):
            tiny.step(cache, cond_BC, 0, x_BlLat)
        with pytest.raises(ValueError, match=r"got 4"):
            tiny.step(cache, cond_BC, TINY.num_scales)
        tiny.step(cache, cond_BC, 0)
        with pytest.raises(ValueError, match="got None"):
            tiny.step(cache, cond_BC, 1)
        with pytest.raises(ValueError, match="batch size 2"):
            tiny.step(cache, cond_BC[:1], 1, x_BlLat[:1])


def test_condition_shape_error(tiny):
    with pytest.raises(ValueError, match=r"\(B, 512\), got \(2, 16\)"):
        tiny.condition(torch.randn(2, 16))
    with pytest.raises(ValueError, match="x_BLLat must have shape"):
        tiny(tiny.condition(torch.randn(2, 512)), torch.randn(2, 3, TINY.latent_dim))


@torch.no_grad()
def test_input_embedding_sums_level_and_position_first(tiny):
    """The official order: ``lvl_pos = lvl_embed + pos`` first, then added to the token embedding."""
    cond_BC, x_BLLat = _inputs(tiny)
    L, s0 = TINY.tokens_per_window, TINY.scales[0]
    tokens_BLC = torch.cat([cond_BC.unsqueeze(1) + tiny.pos_start, tiny.word_embed(x_BLLat)], dim=1)
    lvl_pos_1LC = tiny.lvl_embed(tiny.level_L).unsqueeze(0) + tiny.pos_1LC
    got_BLC = tiny._embed(cond_BC, x_BLLat, 0, L)
    assert torch.equal(got_BLC, tokens_BLC + lvl_pos_1LC)
    other_order = tokens_BLC + tiny.lvl_embed(tiny.level_L) + tiny.pos_1LC
    assert not torch.equal(got_BLC, other_order)  # float32 rounding tells the two orders apart
    start, end = tiny.scale_bounds[2]  # one step of generation: the same order on its slice
    x_BlLat = x_BLLat[:, start - s0 : end - s0]
    step_BlC = tiny._embed(cond_BC, x_BlLat, start, end)
    # (the word embedding is recomputed on the slice: a matrix product over fewer rows may round
    # differently with several threads, so the reference is built from the same slice)
    assert torch.equal(step_BlC, tiny.word_embed(x_BlLat) + lvl_pos_1LC[:, start:end])
    assert not torch.equal(step_BlC, tiny.word_embed(x_BlLat) + tiny.lvl_embed(tiny.level_L[start:end])
                           + tiny.pos_1LC[:, start:end])


def test_any_object_with_the_fields_builds_the_same_model():
    """The blocks read plain values (``TransformerShape``), not ``AARConfig`` itself."""
    names = ("depth", "embed_dim", "num_heads", "cond_dim", "norm_eps", "max_scale_mul", "latent_dim",
             "codebook_size", "scales", "mlp_dim", "num_scales", "tokens_per_window")
    plain = SimpleNamespace(**{name: getattr(TINY, name) for name in names})
    torch.manual_seed(0)
    a = AARTransformer(TINY).state_dict()
    torch.manual_seed(0)
    b = AARTransformer(plain).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
