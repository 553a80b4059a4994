"""The opt-in bfloat16 path, loading without random init, and the speed-ups that keep results exact."""

from __future__ import annotations

import collections
import doctest
import logging

import pytest
import torch
from conftest import AAR_PTH, SAT_PTH, tiny_generator

import aar.nn.kv_cache as kv_cache_module
import aar.precision.reduced as precision
from aar import AARGenerator, errors
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


def test_bf16_round_trip_keeps_the_tokenizer():
    gen = tiny_generator()
    gen.set_precision("bf16")
    assert gen.dtype == torch.bfloat16 and gen.tokenizer.dtype == torch.float32
    assert gen.generate(torch.randn(2, 512), seed=0).dtype == torch.float32
    gen.set_precision("fp32")
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
    monkeypatch.setattr(errors, "_said", set())
    with caplog.at_level(logging.WARNING, logger="aar.precision.reduced"):
        gen = tiny_generator()
        gen.set_precision("bf16")
        gen.set_precision("bf16")
        gen.set_precision("fp32")
    assert len(caplog.records) == 1 and "slower than float32" in caplog.records[0].getMessage()


def test_fast_bfloat16_is_not_logged(monkeypatch, caplog):
    monkeypatch.setattr(precision, "runs_fast", lambda dtype: True)
    monkeypatch.setattr(errors, "_said", set())
    with caplog.at_level(logging.WARNING, logger="aar.precision.reduced"):
        tiny_generator().set_precision("bf16")
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
        from aar.loading.native import adopt_state, skip_init

        with skip_init():
            model = AARGenerator(gen.config, gen.tokenizer)
        adopt_state(model.transformer, state, "test")


def test_adaln_parameters_are_computed_once_per_generation():
    """Each AdaLN layer runs once per generation, not once per scale: the forward hooks of the
    blocks' and the head's AdaLN linears count their calls over the 16 steps."""
    gen = tiny_generator()
    t = gen.transformer
    calls = collections.Counter()
    for name in [f"blocks.{i}.ada_lin.1" for i in range(len(t.blocks))] + ["head_nm.ada_lin.1"]:
        t.get_submodule(name).register_forward_hook(lambda *_, key=name: calls.update([key]))
    gen.generate_codes(torch.randn(2, 512), seed=0)
    assert len(calls) == len(t.blocks) + 1 and set(calls.values()) == {1}


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


def test_requests_share_a_product_only_where_it_was_seen_to_keep_their_bits():
    """``by_request`` with operands: the first product of a kind is tried both ways on random values
    of that kind; one product over the whole batch serves later calls only where it gave every request
    its own bits, and the answer is always the requests' own bits."""
    import torch.nn.functional as F

    from aar.nn.linear import by_request

    x, w = torch.randn(4, 3, 16), torch.randn(8, 16)
    apart = torch.cat([F.linear(part, w) for part in x.chunk(2)])

    calls = []
    # Three kernels (a kind is the operation's code and its operands): two round a 4-row product
    # otherwise than a 2-row one, the third does not.
    def rounds_otherwise(v):
        calls.append(v.shape[0])
        return F.linear(v, w) + 1e-3 * (v.shape[0] == 4)

    def keeps_bits(v):
        calls.append(v.shape[0])
        return F.linear(v, w)

    for product, first, later in ((rounds_otherwise, [4, 2, 2, 2, 2], [2, 2]),
                                  (keeps_bits, [4, 2, 2, 4], [4])):
        calls.clear()
        assert torch.equal(by_request(product, x, 2, (w,)), apart)
        assert calls == first  # tried on random values (4, then 2 and 2), then the answer
        calls.clear()
        assert torch.equal(by_request(product, x + 1, 2, (w,)),
                           torch.cat([F.linear(part, w) for part in (x + 1).chunk(2)]))
        assert calls == later
    # The trial runs on random values, not the caller's: zeros, equal either way, decide nothing.
    def also_rounds_otherwise(v):
        return F.linear(v, w) + 1e-3 * (v.shape[0] == 4)

    zeros = torch.zeros(4, 3, 16)
    assert torch.equal(by_request(also_rounds_otherwise, zeros, 2, (w,)), torch.zeros(4, 3, 8))
    assert torch.equal(by_request(also_rounds_otherwise, x, 2, (w,)), apart)


def test_trying_a_product_leaves_the_global_random_stream_alone():
    """The random values of ``by_request``'s first trial of a kind come from a stream of their own:
    a caller's ``torch.manual_seed`` draws the same numbers whether or not a trial ran in between."""
    import torch.nn.functional as F

    from aar.nn.linear import by_request

    x, w = torch.randn(6, 5, 24), torch.randn(7, 24)

    def product(v):  # a kind of its own: no earlier call has tried it
        return F.linear(v, w)

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    by_request(product, x, 3, (w,))  # the first call of the kind: tried both ways
    assert torch.equal(torch.rand(3), expected)
