"""Continuing a clip and inpainting a region of a long clip, on the windowed machinery of long generation."""

import inspect
import math

import pytest
import torch
from test_generator import _clap

from aar import AARGenerator
from aar.generation.editing import ForcedTokens, token_mask
from aar.generation.long_generation import continue_long, fade_in

N = 24000


@pytest.fixture
def gen(shared_tiny_generator):
    return shared_tiny_generator


def _clip(seconds, seed=0, rate=24000):
    t = torch.arange(round(seconds * rate)) / rate
    noise = 0.05 * torch.randn(t.shape, generator=torch.Generator().manual_seed(seed))
    return (0.3 * torch.sin(2 * math.pi * 220 * t) + noise)[None]  # (1, T)


# -------------------------------------------------------------------------------------- continuation
def test_continuation_keeps_the_clip_and_joins_its_end(gen):
    clip = _clip(1.3)
    P, O = clip.shape[-1], round(0.25 * N)
    result = continue_long(gen, clip, 24000, seconds=0.9, clap_emb=_clap(1), seed=3)
    lay, tok = result.layout, gen.tokenizer
    assert result.audio.shape == (1, 1, P + 21600) and lay.offset == P - O
    assert lay.num_windows == 1 + math.ceil((21600 + O - N) / lay.hop) == 2
    torch.testing.assert_close(result.audio[..., :P - O], clip[None, :, :P - O], rtol=0, atol=0)
    # the first window's known tokens are those of the clip's last O samples, placed at its start
    head = torch.zeros(1, 1, N)
    head[..., :O] = clip[..., P - O:]
    known = tok.encode(head, 24000)
    plan = result.forced[0]
    for si, m in enumerate(token_mask(torch.arange(N).unsqueeze(0) < O, gen.config.scales)):
        assert torch.equal(plan.mask[si], m) and m.any() == (si >= 2)
        assert torch.equal(result.windows[0][si][:, 0][m], known[si][:, 0][m]), si
    first = tok.decode(result.windows[0])
    fade = fade_in(O)
    seam = clip[None, :, P - O:] * (1 - fade) + first[..., :O] * fade
    torch.testing.assert_close(result.audio[..., P - O:P], seam, atol=1e-6, rtol=0)
    hop = lay.hop  # from there on, window 1 takes over (crossfaded over the next O samples)
    torch.testing.assert_close(result.audio[..., P:P - O + hop], first[..., O:hop], rtol=0, atol=0)


def test_continue_audio_is_seeded_checked_first_and_conditions_on_the_clip(gen, monkeypatch):
    clip = _clip(0.6)
    a = gen.continue_audio(clip, 24000, seconds=0.5, clap_emb=_clap(1), seed=1)
    result = continue_long(gen, clip, 24000, seconds=0.5, clap_emb=_clap(1), seed=1)
    assert a.shape == (1, 1, 14400 + 12000) and torch.equal(a, result.audio)
    with pytest.raises(ValueError, match="lasts 0.1 s, less than the overlap of 0.25 s"):
        gen.continue_audio(_clip(0.1), 24000, seconds=1, clap_emb=_clap(1))
    with pytest.raises(ValueError, match="top_p"):
        gen.continue_audio(clip, 24000, seconds=1, clap_emb=_clap(1), top_p=2.0)
    embedded = []
    monkeypatch.setattr(gen, "clap_vectors", lambda *a, **k: embedded.append(k) or _clap(1))
    gen.continue_audio(clip, 16000, seconds=0.2, seed=0)
    assert embedded[0]["sample_rate"] == 16000 and embedded[0]["audio"].shape == (1, 1, 14400)


# ------------------------------------------------------------------------------ inpainting, long clips
def test_inpainting_a_long_clip_replaces_only_the_unknown_samples(gen):
    clip = _clip(3.0, seed=2)  # three windows
    region = (1.2, 2.1)  # seconds to regenerate, across a window boundary of the tokenizer's grid
    keep = [(0.0, region[0]), (region[1], 3.0)]
    out = gen.inpaint(clip, keep, _clap(1), sample_rate=24000, seed=5)
    assert out.shape == (1, 1, 72000)
    a, b = round(region[0] * N), round(region[1] * N)
    torch.testing.assert_close(out[..., :a], clip[None, :, :a], rtol=0, atol=0)
    torch.testing.assert_close(out[..., b:], clip[None, :, b:], rtol=0, atol=0)
    assert (out[..., a:b] - clip[None, :, a:b]).abs().max() > 1e-3  # regenerated


def test_each_window_of_a_long_inpainting_forces_its_known_tokens(gen, monkeypatch):
    clip = _clip(2.5, seed=4)
    plans = []
    original = AARGenerator.generate_codes

    def spy(self, *args, forced: ForcedTokens | None = None, **kwargs):
        plans.append(forced)
        return original(self, *args, forced=forced, **kwargs)

    monkeypatch.setattr(AARGenerator, "generate_codes", spy)
    known = torch.ones(60000, dtype=torch.bool)
    known[30000:54000] = False  # 1.25 s to 2.25 s: more than one window's worth after the context
    gen.inpaint(clip, known, _clap(1), sample_rate=24000, seed=0)
    assert len(plans) == 2
    # window 1 starts 0.25 s before the first unknown sample; its first 0.25 s are known
    fine = plans[0].mask[-1][0]  # (75,) tokens of the last scale, 320 samples each
    assert fine[: 6000 // 320].all() and not fine[6000 // 320 + 1:].any()
    assert plans[1].num_forced() > 0  # the second window starts from audio the first one filled


def test_long_inpainting_checks_the_mask_against_the_clip():
    gen = AARGenerator.__new__(AARGenerator)  # the check comes before any model is used
    from aar.generation.editing import known_samples

    with pytest.raises(ValueError, match=r"\(60000,\) or \(B, 60000\)"):
        known_samples(torch.ones(24000, dtype=torch.bool), 60000, 24000)
    assert gen is not None


# --------------------------------------------------------------------------------------- signatures
@pytest.mark.parametrize("method", ["generate", "generate_codes", "vary", "inpaint", "continue_audio"])
def test_public_methods_spell_out_their_keywords(method):
    params = inspect.signature(getattr(AARGenerator, method)).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), method
    knobs = {"cfg", "seed", "top_k", "top_p", "temperature", "generator", "progress", "callback"}
    assert knobs <= set(params)
    assert method in ("vary", "inpaint", "continue_audio") or "prompt" in params


def test_a_misspelt_keyword_names_the_method_called(gen):
    with pytest.raises(TypeError, match=r"generate\(\) got an unexpected keyword argument 'topk'"):
        gen.generate(_clap(1), topk=5)
