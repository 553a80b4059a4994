"""Sampling functions: guidance, filters, the draw and the knob checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aar.generation.sampling import (
    apply_temperature,
    cfg_mix,
    draw,
    guidance_scale,
    make_generator,
    sample,
    top_k_filter,
    top_p_filter,
    validate_sampling,
)

V = 64


def _logits(seed: int = 0, shape=(3, 7, V)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3


def test_guidance_ramp():
    assert [guidance_scale(3.0, si, 4) for si in range(4)] == [0.0, 1.0, 2.0, 3.0]
    assert guidance_scale(4.0, 15, 16) == 4.0
    assert guidance_scale(-2.0, 1, 3) == -1.0  # anti-guidance is allowed
    assert guidance_scale(5.0, 0, 1) == 0.0


def test_cfg_mix():
    cond, uncond = _logits(0), _logits(1)
    torch.testing.assert_close(cfg_mix(cond, uncond, 0.0), cond)
    torch.testing.assert_close(cfg_mix(cond, uncond, 2.0), 3 * cond - 2 * uncond)


def test_temperature():
    logits = _logits()
    assert apply_temperature(logits, 1.0) is logits
    torch.testing.assert_close(apply_temperature(logits, 2.0), logits / 2)


def test_top_k_one_is_argmax():
    logits = _logits()
    for seed in range(3):
        idx = sample(logits, top_k=1, generator=make_generator(seed))
        assert torch.equal(idx, logits.argmax(-1))


def test_top_k_keeps_ties():
    logits = torch.tensor([1.0, 3.0, 3.0, 2.0])
    assert torch.isfinite(top_k_filter(logits, 1)).tolist() == [False, True, True, False]
    assert torch.isfinite(top_k_filter(logits, 2)).tolist() == [False, True, True, False]
    assert torch.isfinite(top_k_filter(logits, 3)).tolist() == [False, True, True, True]


def test_top_k_off():
    logits = _logits()
    for k in (None, 0, V):
        assert torch.equal(top_k_filter(logits, k), logits)
    assert torch.isfinite(top_k_filter(logits, 5)).sum(-1).eq(5).all()


def test_top_p_keeps_nucleus_and_max():
    logits = torch.tensor([0.1, 0.2, 0.3, 0.4]).log()
    # ascending cumulative probabilities 0.1, 0.3, 0.6, 1.0: those <= 0.35 go
    assert torch.isfinite(top_p_filter(logits, 0.65)).tolist() == [False, False, True, True]
    # a tiny top_p still keeps the most likely token of every row
    many = _logits()
    kept = torch.isfinite(top_p_filter(many, 1e-6))
    assert kept.sum(-1).eq(1).all()
    assert torch.equal(kept.float().argmax(-1), many.argmax(-1))


def test_top_p_off():
    logits = _logits()
    assert torch.equal(top_p_filter(logits, None), logits)
    assert torch.equal(top_p_filter(logits, 1.0), logits)


def test_filters_do_not_modify_input():
    logits = _logits()
    before = logits.clone()
    top_p_filter(top_k_filter(logits, 3), 0.5)
    assert torch.equal(logits, before)


def test_same_seed_same_draws():
    logits = _logits()
    first = sample(logits, top_k=10, top_p=0.9, generator=make_generator(7))
    second = sample(logits, top_k=10, top_p=0.9, generator=make_generator(7))
    other = sample(logits, top_k=10, top_p=0.9, generator=make_generator(8))
    assert first.shape == (3, 7) and first.dtype == torch.int64
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_draw_consumes_one_multinomial():
    logits = _logits()
    ours, theirs = make_generator(3), make_generator(3)
    idx = draw(logits, ours)
    expected = torch.multinomial(logits.softmax(-1).view(-1, V), 1, replacement=True, generator=theirs)
    assert torch.equal(idx, expected.view(3, 7))
    assert torch.equal(ours.get_state(), theirs.get_state())


@pytest.mark.parametrize(
    ("kwargs", "error", "shown"),
    [
        ({"top_k": -1}, ValueError, "-1"),
        ({"top_k": 2.5}, TypeError, "2.5"),
        ({"top_k": True}, TypeError, "True"),
        ({"top_p": 0.0}, ValueError, "0.0"),
        ({"top_p": -0.5}, ValueError, "-0.5"),
        ({"top_p": 1.5}, ValueError, "1.5"),
        ({"top_p": math.nan}, ValueError, "nan"),
        ({"top_p": "0.9"}, TypeError, "'0.9'"),
        ({"temperature": 0.0}, ValueError, "0.0"),
        ({"temperature": -1.0}, ValueError, "-1.0"),
        ({"temperature": math.inf}, ValueError, "inf"),
        ({"temperature": None}, TypeError, "None"),
        ({"temperature": False}, TypeError, "False"),
    ],
)
def test_validate_sampling_errors(kwargs, error, shown):
    knobs = {"top_k": 10, "top_p": 0.9, "temperature": 1.0} | kwargs
    name = next(iter(kwargs))
    with pytest.raises(error, match=name) as info:
        validate_sampling(**knobs)
    assert shown in str(info.value)


@pytest.mark.parametrize(
    ("top_k", "top_p", "temperature"),
    [(None, None, 1.0), (0, 1.0, 0.5), (V, 0.95, 2), (V + 1, 0.5, 1), (np.int64(5), np.float32(0.5), 1)],
)
def test_validate_sampling_accepts(top_k, top_p, temperature):
    validate_sampling(top_k, top_p, temperature)


@pytest.mark.parametrize("top_k", [V, V + 1, 10**6])
def test_top_k_at_or_above_the_vocabulary_filters_nothing(top_k):
    logits = _logits()
    validate_sampling(top_k, None, 1.0)  # accepted, as the filter treats it as off
    assert torch.equal(top_k_filter(logits, top_k), logits)
    assert torch.equal(sample(logits, top_k=top_k, generator=make_generator(4)),
                       sample(logits, top_k=None, generator=make_generator(4)))


def test_make_generator_seed():
    a, b = make_generator(seed=5), make_generator(seed=5, device=torch.device("cpu"))
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    assert a.initial_seed() == 5 and a.device.type == "cpu"
    assert make_generator(np.int64(5)).initial_seed() == 5


def test_make_generator_unseeded_and_given():
    a, b = make_generator(), make_generator()
    assert isinstance(a, torch.Generator) and a.initial_seed() != b.initial_seed()
    mine = torch.Generator()
    assert make_generator(generator=mine) is mine


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"seed": 1, "generator": torch.Generator()}, ValueError),
        ({"seed": True}, TypeError),
        ({"seed": 1.0}, TypeError),
        ({"seed": "1"}, TypeError),
        ({"seed": 2**64}, ValueError),
        ({"generator": 3}, TypeError),
    ],
)
def test_make_generator_errors(kwargs, error):
    with pytest.raises(error):
        make_generator(**kwargs)


def test_per_row_generators_draw_each_row_as_a_batch_of_one():
    from aar.generation.sampling import draw, make_generator

    logits = torch.randn(3, 5, 40, generator=torch.Generator().manual_seed(0))
    rows = draw(logits, make_generator(seed=[7, 8, 9]))
    for b, seed in enumerate((7, 8, 9)):
        assert torch.equal(rows[b:b + 1], draw(logits[b:b + 1], make_generator(seed)))
    assert not torch.equal(rows, draw(logits, make_generator(7)))  # one stream for the batch differs
    given = [torch.Generator().manual_seed(s) for s in (7, 8, 9)]
    assert make_generator(generator=given) == given and torch.equal(draw(logits, given), rows)
    with pytest.raises(ValueError, match="2 seeds or generators for a batch of 3"):
        draw(logits, make_generator(seed=[1, 2]))
    with pytest.raises(ValueError, match="empty"):
        make_generator(seed=[])
    with pytest.raises(TypeError, match="sequence of ints"):
        make_generator(seed=[1, 2.5])
