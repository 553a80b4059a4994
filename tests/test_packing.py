"""Opt-in oneDNN weight packing (``gen.pack_weights()``): same results to rounding, never stale."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
import torch.nn.functional as F
from conftest import AAR_PTH, SAT_PTH, TINY_SAT
from hypothesis import given, settings
from hypothesis import strategies as st

import aar.nn.linear as linear_module
from aar import AARConfig, AARGenerator, SATTokenizer
from aar.nn.linear import PACKED_MAX_ROWS, Linear, packing_available

pytestmark = pytest.mark.skipif(not packing_available(), reason="this PyTorch build has no oneDNN")

RUNS = {
    "greedy": dict(cfg=3.0, top_k=1, top_p=None, seed=0),
    "sampled": dict(cfg=3.0, top_k=50, top_p=0.95, seed=1234),
}


def tiny_generator(depth: int = 3, embed_dim: int = 96, num_heads: int = 3) -> AARGenerator:
    torch.manual_seed(0)
    config = AARConfig(depth=depth, embed_dim=embed_dim, num_heads=num_heads,
                       latent_dim=TINY_SAT.latent_dim, codebook_size=TINY_SAT.codebook_size)
    return AARGenerator(config, SATTokenizer(TINY_SAT)).eval()


@pytest.fixture(scope="module")
def official_pair():
    plain = AARGenerator.from_pretrained(AAR_PTH, tokenizer=SAT_PTH)
    return plain, copy.deepcopy(plain).pack_weights()


def _codes(reference):
    return [reference[f"codes.{i}"][:, 0] for i in range(16)]


@pytest.mark.parametrize("run", sorted(RUNS))
def test_packed_generator_reproduces_the_official_tokens(official_pair, reference, run):
    _, packed = official_pair
    assert packed.weights_packed
    codes = packed.generate_codes(reference["clap"], **RUNS[run])
    for i in range(16):
        assert torch.equal(codes[i][:, 0], reference[f"{run}.codes.{i}"]), f"scale {i}"
    torch.testing.assert_close(packed.tokenizer.decode(codes), reference[f"{run}.audio"], atol=1e-4, rtol=0)


@pytest.fixture
def packed_calls(monkeypatch):
    """Counts the products that ran on packed weights."""
    calls = []
    forward = Linear._packed_forward
    monkeypatch.setattr(Linear, "_packed_forward", lambda self, *a: calls.append(1) or forward(self, *a))
    return calls


def test_packed_logits_equal_unpacked_to_rounding(official_pair, reference, packed_calls):
    plain, packed = official_pair
    codes = [c[:1] for c in _codes(reference)]  # one item: 455 rows, within PACKED_MAX_ROWS
    for clap in (reference["clap"][:1], None):
        a, b = plain.logits(codes, clap), packed.logits(codes, clap)
        torch.testing.assert_close(b, a, atol=1e-4, rtol=0)
    assert len(packed_calls) == 2 * (2 + 4 * packed.config.depth)  # word_embed, head, 4 per block
    got = packed.logits(codes, reference["clap"][:1])
    torch.testing.assert_close(got, reference["tf_logits"][:1], atol=1e-3, rtol=0)


def test_large_products_run_unpacked(packed_calls):
    layer = Linear(16, 8)
    layer.pack()
    with torch.no_grad():
        big = torch.randn(PACKED_MAX_ROWS + 1, 16)
        assert torch.equal(layer(big), F.linear(big, layer.weight, layer.bias)) and not packed_calls
        layer(torch.randn(2, PACKED_MAX_ROWS // 2, 16))
        assert len(packed_calls) == 1
        assert layer(torch.randn(0, 16)).shape == (0, 8)


def test_packed_other_shapes_batch_and_cache():
    """Another depth, width and head count, batch 3: packed generation steps equal the packed full pass."""
    plain = tiny_generator()
    packed = copy.deepcopy(plain).pack_weights()
    clap = F.normalize(torch.randn(3, 512, generator=torch.Generator().manual_seed(5)), dim=1)
    codes = plain.generate_codes(clap, cfg=2.0, seed=7)
    full = packed.logits(codes, clap)
    torch.testing.assert_close(full, plain.logits(codes, clap), atol=1e-5, rtol=1e-5)
    model, levels = packed.transformer, [c[:, 0] for c in codes]
    x = packed.next_scale_inputs(levels)
    cond = model.condition(clap)
    with torch.no_grad(), model.kv_cache() as cache:
        for si, (start, end) in enumerate(model.scale_bounds):
            x_si = None if si == 0 else x[:, start - 1 : end - 1]
            step = model.step(cache, cond, si, x_si)
            torch.testing.assert_close(step, full[:, start:end], atol=1e-5, rtol=1e-5)
    greedy = dict(cfg=4.0, top_k=1, top_p=None)
    assert all(torch.equal(a, b) for a, b in zip(plain.generate_codes(clap, **greedy),
                                                  packed.generate_codes(clap, **greedy)))


def test_unpacking_restores_exact_arithmetic(reference):
    plain = AARGenerator.from_pretrained(AAR_PTH, tokenizer=SAT_PTH)
    gen = copy.deepcopy(plain).pack_weights()
    assert gen.pack_weights(False) is gen and not gen.weights_packed
    codes = _codes(reference)
    assert torch.equal(gen.logits(codes, reference["clap"]), plain.logits(codes, reference["clap"]))


def test_a_changed_weight_is_never_used_stale(caplog, monkeypatch):
    monkeypatch.setattr(linear_module, "_stale_logged", False)
    gen = tiny_generator().pack_weights()
    clap = torch.randn(2, 512)
    codes = gen.generate_codes(clap, seed=0)
    with torch.no_grad():
        gen.transformer.head.weight.mul_(2.0)  # in place: the pack no longer matches
    with caplog.at_level(logging.WARNING, logger="aar.nn.linear"):
        got = gen.logits(codes, clap)
    assert caplog.text.count("changed after pack()") == 1 and not gen.weights_packed
    assert gen.transformer.head.packed is None
    expected = copy.deepcopy(gen).pack_weights(False).logits(codes, clap)
    assert torch.equal(got, expected)


def test_loading_new_weights_drops_stale_packs(caplog, monkeypatch):
    monkeypatch.setattr(linear_module, "_stale_logged", False)
    gen, other = tiny_generator().pack_weights(), tiny_generator()
    with torch.no_grad():
        for p in other.transformer.parameters():
            p.add_(0.01)
    gen.transformer.load_state_dict(other.transformer.state_dict())
    clap = torch.randn(1, 512)
    codes = other.generate_codes(clap, seed=0)
    with caplog.at_level(logging.WARNING, logger="aar.nn.linear"):
        assert torch.equal(gen.logits(codes, clap), other.logits(codes, clap))
    assert not gen.weights_packed
    assert caplog.text.count("changed after pack()") == 1  # once, not once per layer


def test_dtype_changes_repack_or_unpack(caplog):
    gen = tiny_generator().pack_weights()
    packs = [layer.packed for layer in gen.transformer.step_layers()]
    gen.to("cpu", torch.float32)  # nothing changes: the packs are kept, not made again
    assert [layer.packed for layer in gen.transformer.step_layers()] == packs
    gen.to(dtype=torch.bfloat16)
    assert gen.weights_packed and gen.transformer.head.packed.tensor.dtype == torch.float32  # head stays
    assert gen.transformer.blocks[0].ffn.fc1.packed.tensor.dtype == torch.bfloat16
    clap = torch.randn(2, 512)
    codes = gen.generate_codes(clap, seed=0)
    low = copy.deepcopy(gen)  # copies start unpacked
    assert not low.weights_packed
    torch.testing.assert_close(gen.logits(codes, clap), low.logits(codes, clap), atol=2e-2, rtol=0)
    with caplog.at_level(logging.INFO, logger="aar.placement"):
        gen.to(dtype=torch.float16)  # float16 cannot be packed: unpacked, and said so
    assert not gen.weights_packed and "float16" in caplog.text
    gen.to(dtype=torch.float32)
    assert not gen.weights_packed  # to() re-packs only what was packed


def test_packing_refuses_what_it_cannot_run():
    layer = Linear(8, 4).to(torch.float16)
    with pytest.raises(ValueError, match="got torch.float16"):
        layer.pack()
    meta = Linear(8, 4, device="meta")
    with pytest.raises(ValueError, match="on meta"):
        meta.pack()
    gen = tiny_generator().to(dtype=torch.float16)
    with pytest.raises(ValueError, match="float16"):
        gen.pack_weights()


def test_autograd_runs_the_plain_layer():
    layer = Linear(16, 8)
    layer.pack()
    x = torch.randn(5, 16, requires_grad=True)
    y = layer(x)
    assert torch.equal(y, F.linear(x, layer.weight, layer.bias))
    y.sum().backward()
    assert layer.weight.grad is not None and x.grad is not None


@settings(max_examples=25, deadline=None)
@given(
    in_features=st.integers(1, 70), out_features=st.integers(1, 70),
    lead=st.lists(st.integers(1, 5), min_size=0, max_size=3), bias=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.bfloat16]),
)
def test_packed_linear_matches_linear_for_any_shape(in_features, out_features, lead, bias, dtype):
    torch.manual_seed(in_features * 100 + out_features)
    layer = Linear(in_features, out_features, bias=bias)
    layer.weight.data = layer.weight.data.to(dtype)
    x = torch.randn(*lead, in_features)
    with torch.no_grad():
        expected = layer(x)
        layer.pack()
        got = layer(x)
        other_bias = torch.randn(out_features)
        got_other = layer(x, other_bias)  # a bias given at the call replaces the layer's own
        layer.unpack()
        expected_other = layer(x, other_bias)
    assert got.shape == expected.shape == (*lead, out_features) and got.dtype == torch.float32
    atol = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(got, expected, atol=atol, rtol=1e-4)
    torch.testing.assert_close(got_other, expected_other, atol=atol, rtol=1e-4)
