"""The opt-in bfloat16 path, loading without random init, and the speed-ups that keep results exact."""

from __future__ import annotations

import doctest
import logging

import pytest
import torch
from conftest import AAR_PTH, SAT_PTH, tiny_generator

import aar.nn.kv_cache as kv_cache_module
import aar.nn.precision as precision
from aar import AARGenerator
from aar.errors import CheckpointError


@pytest.fixture(scope="module")
def pair():
    """The fixture checkpoints in float32 and in bfloat16."""
    return (AARGenerator.from_pretrained(AAR_PTH, tokenizer=SAT_PTH),
            AARGenerator.from_pretrained(AAR_PTH, tokenizer=SAT_PTH, dtype=torch.bfloat16))


def test_bfloat16_casts_matrix_weights_only(pair):
    _, low = pair
    t = low.transformer
    assert low.dtype == torch.bfloat16 and low.tokenizer.dtype == torch.float32
    assert t.blocks[0].attn.mat_qkv.weight.dtype == t.word_embed.weight.dtype == torch.bfloat16
    assert t.head.weight.dtype == torch.float32  # logits near 12 need more than bfloat16's 8 bits
    assert {p.dtype for n, p in t.named_parameters() if not n.endswith("weight")} == {torch.float32}
    assert t.pos_1LC.dtype == t.uncond_embedding.dtype == torch.float32


def test_to_dtype_round_trip_keeps_the_tokenizer():
    gen = tiny_generator()
    gen.to(dtype=torch.bfloat16)
    assert gen.dtype == torch.bfloat16 and gen.tokenizer.dtype == torch.float32
    assert gen.generate(torch.randn(2, 512), seed=0).dtype == torch.float32
    gen.to(torch.float32)
    assert {p.dtype for p in gen.parameters()} == {torch.float32}


def test_bfloat16_accuracy_on_the_fixture(pair, reference):
    """Thresholds fit what docs/performance.md reports (0.032, 99.6 %, 99 % of greedy tokens)."""
    ref, low = pair
    codes = [reference[f"codes.{i}"][:, 0] for i in range(16)]
    a, b = ref.logits(codes, reference["clap"]), low.logits(codes, reference["clap"])
    assert b.dtype == torch.float32
    assert (a - b).abs().max() < 0.06
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() >= 0.99
    greedy = dict(cfg=3.0, top_k=1, top_p=None)
    x, y = ref.generate_codes(reference["clap"], **greedy), low.generate_codes(reference["clap"], **greedy)
    agree = torch.cat([(p == q).flatten() for p, q in zip(x, y)]).float().mean()
    assert agree >= 0.97
    assert all(torch.equal(p, q) for p, q in zip(x[:8], y[:8]))  # coarse scales agree exactly
    # A flipped fine token changes the audio around it: the error is local, not small.
    assert (ref.tokenizer.decode(x) - low.tokenizer.decode(y)).abs().max() < 0.25


def test_float32_linear_is_plain_linear():
    x, w, b = torch.randn(3, 5, 8), torch.randn(4, 8), torch.randn(4)
    assert torch.equal(precision.linear(x, w, b), torch.nn.functional.linear(x, w, b))
    mixed = precision.linear(x, w.bfloat16(), b)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, torch.nn.functional.linear(x, w, b), atol=0.1, rtol=0.02)


def test_slow_bfloat16_is_logged_once(monkeypatch, caplog):
    monkeypatch.setattr(precision, "runs_fast", lambda dtype: False)
    monkeypatch.setattr(precision, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="aar.nn.precision"):
        gen = tiny_generator()
        gen.to(dtype=torch.bfloat16)
        gen.to(dtype=torch.bfloat16)
        gen.to(torch.float32)
    assert len(caplog.records) == 1 and "slower than float32" in caplog.records[0].getMessage()


def test_fast_bfloat16_is_not_logged(monkeypatch, caplog):
    monkeypatch.setattr(precision, "runs_fast", lambda dtype: True)
    monkeypatch.setattr(precision, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="aar.nn.precision"):
        tiny_generator().to(dtype=torch.bfloat16)
    assert not caplog.records


def test_matrix_units_probe_matches_torch():
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    expected = bool(amx and torch.backends.mkldnn.is_available())
    assert precision.cpu_has_matrix_units(torch.bfloat16) == expected
    assert precision.cpu_has_matrix_units(torch.float32) is False


def test_loading_skips_random_init(tmp_path):
    """from_pretrained draws no random numbers: nothing is initialised only to be overwritten."""
    tiny_generator().save_pretrained(tmp_path)
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    gen = AARGenerator.from_pretrained(tmp_path)
    assert torch.equal(torch.rand(4), expected)
    tensors = [*gen.parameters(), *gen.buffers()]
    assert not any(t.is_meta for t in tensors)
    level_L = torch.repeat_interleave(torch.arange(16), torch.tensor(gen.config.scales))
    assert torch.equal(gen.transformer.level_L, level_L)


def test_loading_keeps_dtypes_and_strict_keys(tmp_path):
    gen = tiny_generator().to(dtype=torch.bfloat16)
    gen.save_pretrained(tmp_path)
    loaded = AARGenerator.from_pretrained(tmp_path)  # copied semantics: float32 unless asked
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    state = dict(gen.transformer.state_dict())
    state["head.bias"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match="head.bias"):
        from aar._loading import adopt_state, skip_init

        with skip_init():
            model = AARGenerator(gen.config, gen.tokenizer)
        adopt_state(model.transformer, state, "test")


def test_adaln_parameters_are_computed_once_per_generation(monkeypatch):
    gen = tiny_generator()
    calls = []
    original = gen.transformer._step_constants
    monkeypatch.setattr(gen.transformer, "_step_constants", lambda *args: calls.append(1) or original(*args))
    gen.generate_codes(torch.randn(2, 512), seed=0)
    assert len(calls) == 1


def test_cfg_zero_runs_the_conditional_branch_only(monkeypatch):
    gen = tiny_generator()
    clap = torch.randn(3, 512)
    batches = []
    step = gen.transformer.step

    def counting_step(cache, cond_BC, *args, **kwargs):
        batches.append(cond_BC.shape[0])
        return step(cache, cond_BC, *args, **kwargs)

    monkeypatch.setattr(gen.transformer, "step", counting_step)
    codes = gen.generate_codes(clap, cfg=0.0, top_k=1)
    assert set(batches) == {3}
    logits = gen.logits(codes, clap)
    assert torch.equal(logits.argmax(-1), torch.cat([c[:, 0] for c in codes], dim=1))
    batches.clear()
    gen.generate_codes(clap, cfg=1.0, top_k=1)
    assert set(batches) == {6}


def test_kv_cache_docstring():
    assert doctest.testmod(kv_cache_module).failed == 0


def test_requests_share_a_product_only_where_it_was_seen_to_keep_their_bits(monkeypatch):
    """``per_request``: the first product of a kind runs per request and over the whole batch, and
    the batch-wide product serves later calls of that kind only if the two agreed to the bit."""
    import torch.nn.functional as F

    import aar.nn.linear as linear_module

    x, w = torch.randn(4, 3, 16), torch.randn(8, 16)
    apart = torch.cat([F.linear(part, w) for part in x.chunk(2)])
    calls = []

    def counting(shift):  # a product that, over 4 rows, adds ``shift``: a kernel that rounds otherwise
        return lambda x, w, b: calls.append(x.shape[0]) or F.linear(x, w, b) + shift * (x.shape[0] == 4)

    for shift, later in ((1.0, [2, 2]), (0.0, [4])):
        monkeypatch.setattr(linear_module, "_POOLING", {})
        monkeypatch.setattr(linear_module, "linear", counting(shift))
        calls.clear()
        assert torch.equal(linear_module.per_request(x, w, None, 2), apart)
        assert sorted(calls) == [2, 2, 4] and list(linear_module._POOLING.values()) == [shift == 0]
        calls.clear()
        assert torch.equal(linear_module.per_request(x, w, None, 2), apart)
        assert calls == later
