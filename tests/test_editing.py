"""Forced-token generation: variations, inpainting and long generation on tiny random models."""

import math

import numpy as np
import pytest
import torch
from conftest import tiny_generator
from test_generator import _clap

from aar import AudioCodes
from aar.generation.editing import ForcedTokens, forced_map, known_samples, token_mask
from aar.generation.long_generation import WindowLayout, fade_in, generate_long
from aar.generation.sampling import guidance_scale

N = 24000


@pytest.fixture
def gen(shared_tiny_generator):
    return shared_tiny_generator


class StubClap:
    """Stands in for ClapEncoder: a fixed unit vector per item, and a record of the calls."""

    def __init__(self):
        self.calls = []

    def embed_audio(self, audio, sample_rate):
        self.calls.append((tuple(audio.shape), sample_rate))
        return _clap(audio.shape[0] if audio.ndim == 3 else 1, seed=99)

    def embed_text(self, prompt):
        raise AssertionError("not used")


def _random_codes(gen, batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    V = gen.config.codebook_size
    return [torch.randint(V, (batch, s), generator=g) for s in gen.config.scales]


# ---------------------------------------------------------------------------- masks and plans
def test_token_mask_follows_the_span_rule():
    """A token is forced iff every sample in [floor(jN/s), ceil((j+1)N/s)) is known."""
    g = torch.Generator().manual_seed(0)
    n, scales = 60, (1, 2, 4, 7, 9, 13, 60)
    known = torch.ones(3, n, dtype=torch.bool)
    known[0, 20:23] = False
    known[1] = torch.rand(n, generator=g) > 0.1
    for s, mask in zip(scales, token_mask(known, scales)):
        for j in range(s):
            lo, hi = math.floor(j * n / s), math.ceil((j + 1) * n / s)
            assert mask[:, j].tolist() == known[:, lo:hi].all(dim=1).tolist(), (s, j)


def test_straddling_tokens_are_sampled():
    known = known_samples((0.0, 0.3), N, 24000)  # 0.3 s is not on the grid of 6 tokens
    mask = token_mask(known, (1, 2, 6, 75))
    assert mask[0].tolist() == [[False]] and mask[1].tolist() == [[False, False]]
    assert mask[2].tolist() == [[True, False, False, False, False, False]]  # token 1 is [1/6, 2/6)
    assert mask[3].sum() == 22  # 0.3 * 75 = 22.5: the 23rd frame straddles


def test_known_samples_forms():
    a = known_samples([(0.0, 0.25), (0.5, 0.75)], N, 24000)
    assert a.shape == (1, N) and a.sum() == 12000 and a[0, 5999] and not a[0, 6000] and a[0, 12000]
    b = known_samples(np.arange(N) < 6000, N, 24000)
    assert torch.equal(b, known_samples((0, 0.25), N, 24000))
    assert known_samples(torch.zeros(2, N, dtype=torch.bool), N, 24000).shape == (2, N)


def test_prefix_plan_and_apply():
    codes = [torch.tensor([[3]]), torch.tensor([[1, 2]])]
    plan = ForcedTokens.from_prefix(codes, 1)
    assert plan.num_forced() == 1
    assert plan.expand(3).batch_size == 3
    assert torch.equal(plan.apply(0, torch.tensor([[0]])), torch.tensor([[3]]))


# ---------------------------------------------------------------------------- forced generation
@pytest.mark.parametrize("cfg", [0.0, 3.0])
def test_forced_tokens_appear_exactly_and_condition_later_scales(gen, cfg):
    """Forced tokens are in the output at every scale, and greedy sampled tokens are the argmax of
    the teacher-forced logits of the output: later scales were predicted from the forced content."""
    g = torch.Generator().manual_seed(1)
    known = _random_codes(gen, 2, seed=1)
    mask = [torch.rand(k.shape, generator=g) < 0.5 for k in known]
    clap = _clap(2)
    out = gen.generate_codes(clap, cfg=cfg, top_k=1, top_p=None, forced=ForcedTokens(mask, known))
    cond, uncond = gen.logits(out, clap), gen.logits(out)
    start = 0
    for si, s in enumerate(gen.config.scales):
        got = out[si][:, 0]
        assert torch.equal(got[mask[si]], known[si][mask[si]]), f"scale {si}"
        t = guidance_scale(cfg, si, 16)
        greedy = ((1 + t) * cond[:, start:start + s] - t * uncond[:, start:start + s]).argmax(-1)
        assert torch.equal(got[~mask[si]], greedy[~mask[si]]), f"scale {si}"
        start += s
    assert sum(int((out[si][:, 0] != known[si])[~mask[si]].sum()) for si in range(16)) > 0


def test_keep_scales(gen):
    clap = _clap(2)
    codes = gen.generate_codes(clap, seed=3)
    assert gen.generate_codes(clap, seed=4, prefix=codes, keep_scales=16).equal(codes)
    assert gen.generate_codes(clap, seed=3, prefix=codes, keep_scales=0).equal(codes)  # ordinary
    other = _random_codes(gen, 2)
    assert gen.generate_codes(clap, seed=3, prefix=other, keep_scales=0).equal(codes)
    varied = gen.generate_codes(clap, seed=5, prefix=other, keep_scales=7)
    assert all(torch.equal(varied[i][:, 0], other[i]) for i in range(7))
    assert not all(torch.equal(varied[i][:, 0], other[i]) for i in range(7, 16))
    one = gen.generate_codes(clap, seed=5, prefix=[c[:1] for c in other], keep_scales=7)  # broadcast
    assert one.batch_size == 2
    assert all(torch.equal(one[i][:, 0], other[i][:1].expand(2, -1)) for i in range(7))


def test_all_known_mask_returns_the_input_codes(gen):
    clap = _clap(2)
    codes = gen.generate_codes(clap, seed=3)
    for known in (torch.ones(N, dtype=torch.bool), (0.0, 1.0), [(0.0, 0.5), (0.5, 1.0)]):
        out = gen.inpaint(codes, known, clap, seed=8)
        assert isinstance(out, AudioCodes) and out.equal(codes)


def test_all_unknown_mask_equals_ordinary_generation(gen):
    clap = _clap(3)
    codes = gen.generate_codes(clap, seed=11)
    other = AudioCodes(tuple(c.unsqueeze(1) for c in _random_codes(gen, 3)), N, 24000)
    assert gen.inpaint(other, torch.zeros(N, dtype=torch.bool), clap, seed=11).equal(codes)
    assert gen.inpaint(other, [], clap, seed=11).equal(codes)


def test_inpaint_keeps_known_tokens_of_audio(gen, monkeypatch):
    wav = torch.randn(2, 1, 18000, generator=torch.Generator().manual_seed(0)) * 0.1
    encoded = gen.tokenizer.encode(wav, 24000)
    known = torch.zeros(2, N, dtype=torch.bool)
    known[0, :9000], known[1, 12000:] = True, True
    monkeypatch.setattr(gen, "clap_encoder", StubClap())  # the generator is shared: restored after
    out = gen.inpaint(wav, known, sample_rate=24000, seed=0)
    assert out.shape == (2, 1, 18000) and gen.clap_encoder.calls == [((2, 1, 18000), 24000)]
    as_codes = gen.inpaint(encoded, known, gen.clap_encoder.embed_audio(wav, 24000), seed=0)
    torch.testing.assert_close(out, gen.tokenizer.decode(as_codes), atol=0, rtol=0)
    for si, m in enumerate(token_mask(known, gen.config.scales)):
        assert torch.equal(as_codes[si][:, 0][m], encoded[si][:, 0][m])
    all_known = gen.inpaint(wav, (0, 1), _clap(2), sample_rate=24000, seed=0)
    torch.testing.assert_close(all_known, gen.tokenizer.decode(encoded), atol=0, rtol=0)


def test_vary(gen, monkeypatch):
    wav = torch.randn(1, 2, 40000, generator=torch.Generator().manual_seed(0)) * 0.1  # stereo, 2 windows
    monkeypatch.setattr(gen, "clap_encoder", StubClap())  # the generator is shared: restored after
    same = gen.vary(wav, 24000, keep_scales=16, seed=0)
    torch.testing.assert_close(same, gen.tokenizer.decode(gen.tokenizer.encode(wav, 24000)), atol=0, rtol=0)
    assert gen.clap_encoder.calls == [((1, 2, 40000), 24000)]
    a = gen.vary(wav, 24000, keep_scales=4, seed=1)
    b = gen.vary(wav, 24000, keep_scales=4, seed=1, clap_emb=_clap(3))  # three variations of one input
    assert a.shape == (1, 1, 40000) and b.shape == (3, 1, 40000) and len(gen.clap_encoder.calls) == 2
    assert not torch.equal(a, same)
    wav_16k = torch.randn(16000) * 0.1
    assert gen.vary(wav_16k, 16000, keep_scales=8, clap_emb=_clap(1), seed=0).shape == (1, 1, 24000)


# ---------------------------------------------------------------------------- long generation
@pytest.mark.parametrize("seconds, overlap", [(0.4, 0.25), (2.3, 0.25), (3.00002, 0.5), (2.5, 0.0)])
def test_long_generation_length(gen, seconds, overlap):
    audio = gen.generate(_clap(2), seconds=seconds, overlap=overlap, seed=0)
    assert audio.shape == (2, 1, round(seconds * 24000)) and audio.dtype == torch.float32


def test_long_generation_is_deterministic(gen):
    clap = _clap(2)
    a = gen.generate(clap, seconds=2.6, overlap=0.3, seed=4)
    b = gen.generate(clap, seconds=2.6, overlap=0.3, seed=4)
    c = gen.generate(clap, seconds=2.6, overlap=0.3, seed=5)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("overlap", [0.25, 0.5])
def test_overlap_decodes_from_the_previous_windows_known_tokens(gen, overlap):
    clap = _clap(2)
    seen = []
    result = generate_long(gen, clap, seconds=3.2, overlap=overlap, seed=2,
                           callback=lambda p: seen.append((p.window, p.num_windows, p.index)))
    lay, tok = result.layout, gen.tokenizer
    O, hop = lay.overlap, lay.hop
    assert O == round(overlap * 24000) and lay.num_windows == 1 + math.ceil((3.2 * 24000 - N) / hop)
    S = gen.config.num_scales
    assert seen == [(w, lay.num_windows, si) for w in range(lay.num_windows) for si in range(S)]
    assert result.forced[0] is None
    fade, T = fade_in(O), result.audio.shape[-1]
    decoded = [tok.decode(codes, batch_size=1) for codes in result.windows]  # each row as alone
    for w in range(lay.num_windows):
        start, cur = w * hop, decoded[w]
        if w > 0:  # the known tokens are the encoded tail of the previous window's audio
            head = torch.zeros_like(cur)
            head[..., :O] = decoded[w - 1][..., N - O:]
            known = tok.encode(head, 24000, batch_size=1)
            plan = result.forced[w]
            assert plan.num_forced() > 0
            for si, m in enumerate(token_mask(torch.arange(N).unsqueeze(0) < O, gen.config.scales)):
                m = m.expand(2, -1)
                assert torch.equal(plan.mask[si], m)
                assert torch.equal(result.windows[w][si][:, 0][m], known[si][:, 0][m]), (w, si)
            seam = decoded[w - 1][..., hop:] * (1 - fade) + cur[..., :O] * fade  # O <= hop here
            end = min(O, T - start)
            got = result.audio[..., start:start + end]
            torch.testing.assert_close(got, seam[..., :end], atol=1e-6, rtol=0)
        lo, hi = (O if w else 0), min(hop if w + 1 < lay.num_windows else N, T - start)
        torch.testing.assert_close(result.audio[..., start + lo:start + hi], cur[..., lo:hi], atol=0, rtol=0)


def test_zero_overlap_concatenates_ordinary_windows(gen):
    clap = _clap(1)
    result = generate_long(gen, clap, seconds=2.0, overlap=0.0, seed=6)
    assert result.forced == (None, None)
    g = torch.Generator().manual_seed(6)
    first, second = gen.generate(clap, generator=g), gen.generate(clap, generator=g)
    torch.testing.assert_close(result.audio, torch.cat([first, second], dim=-1), atol=0, rtol=0)


def test_fade_in_is_complementary():
    f = fade_in(7)
    torch.testing.assert_close(f + f.flip(0), torch.ones(7))
    assert 0 < f[0] < 0.1 and f.diff().min() > 0


def test_window_layout():
    lay = WindowLayout.plan(10, 0.25, 24000, N)
    assert (lay.length, lay.overlap, lay.hop, lay.num_windows) == (240000, 6000, 18000, 13)
    assert WindowLayout.plan(10, 0.5, 24000, N).num_windows == 19
    assert WindowLayout.plan(0.5, 0.5, 24000, N).num_windows == 1


# ---------------------------------------------------------------------------- docs
def test_docs_figures_are_current():
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "generation.md").read_text()
    scales = tiny_generator(depth=1, heads=1, peaky=True).config.scales
    variation = ForcedTokens.from_prefix([torch.zeros(1, s, dtype=torch.long) for s in scales], 6).mask
    assert forced_map(variation) in text
    assert forced_map(token_mask(known_samples([(0, 0.4), (0.7, 1)], N, 24000), scales)) in text
    assert forced_map(token_mask(known_samples((0, 0.25), N, 24000), scales)) in text


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(prefix="codes", keep_scales=-1), ValueError, r"\[0, 16\].*got -1"),
        (dict(prefix="codes", keep_scales=17), ValueError, "got 17"),
        (dict(prefix="codes", keep_scales=True), TypeError, "keep_scales"),
        (dict(prefix="codes", keep_scales=1.5), TypeError, "got 1.5"),
        (dict(prefix="codes"), ValueError, "needs keep_scales"),
        (dict(keep_scales=3), ValueError, "needs prefix"),
        (dict(prefix="two windows", keep_scales=3), ValueError, "W=2"),
        (dict(prefix="short", keep_scales=3), ValueError, "prefix: codes\\[15\\]"),
        (dict(prefix="batch 3", keep_scales=3), ValueError, "condition 2, forced 3"),
        (dict(prefix="codes", keep_scales=3, forced="plan"), ValueError, "not both"),
        (dict(forced="not a plan"), TypeError, "ForcedTokens"),
        (dict(seconds=0), ValueError, "seconds must be > 0"),
        (dict(seconds=-1.0), ValueError, "got -1.0"),
        (dict(seconds="3"), TypeError, "seconds"),
        (dict(seconds=2, overlap=1.0), ValueError, r"\[0, 1\).*got 1.0"),
        (dict(seconds=2, overlap=-0.1), ValueError, "got -0.1"),
        (dict(seconds=2, overlap=float("nan")), TypeError, "overlap"),
        (dict(overlap=0.5), ValueError, "pass seconds="),
        (dict(seconds=2, prefix="codes", keep_scales=3), ValueError, "one window"),
    ],
)
def test_bad_generation_arguments(gen, kwargs, error, match):
    codes = gen.generate_codes(_clap(2), seed=0)
    values = {"codes": codes, "two windows": [torch.cat([c, c], 1) for c in codes],
              "short": [*codes[:15], codes[15][..., :-1]], "batch 3": _random_codes(gen, 3),
              "plan": ForcedTokens.from_prefix(codes.window(0), 2), "not a plan": [1, 2]}
    kwargs = {k: values.get(v, v) if isinstance(v, str) and k != "seconds" else v for k, v in kwargs.items()}
    with pytest.raises(error, match=match):
        gen.generate(_clap(2), **kwargs)


@pytest.mark.parametrize(
    "known, error, match",
    [
        (torch.ones(N - 1, dtype=torch.bool), ValueError, r"\(24000,\) or \(B, 24000\).*\(23999,\)"),
        (torch.ones(N), TypeError, "bool mask.*float32"),
        ([True] * N, TypeError, "got list"),
        ((0.5, 1.5), ValueError, r"\(0.5, 1.5\).*<= 1 s"),
        ((0.6, 0.2), ValueError, "start <= end"),
        (torch.ones(3, N, dtype=torch.bool), ValueError, "codes 2, known 3"),
    ],
)
def test_bad_masks(gen, known, error, match):
    codes = gen.generate_codes(_clap(2), seed=0)
    with pytest.raises(error, match=match):
        gen.inpaint(codes, known, _clap(2))


def test_bad_inpaint_and_vary_inputs(gen):
    codes = gen.generate_codes(_clap(1), seed=0)
    with pytest.raises(ValueError, match="give a condition"):
        gen.inpaint(codes, (0, 0.5))
    with pytest.raises(ValueError, match="sample_rate"):
        gen.inpaint(torch.zeros(N), (0, 0.5), _clap(1))
    with pytest.raises(ValueError, match=r"\(24001,\) or \(B, 24001\).*got \(24000,\)"):
        gen.inpaint(torch.zeros(N + 1), torch.ones(N, dtype=torch.bool), _clap(1), sample_rate=24000)
    with pytest.raises(ValueError, match=r"<= 1.00004 s"):  # a longer clip: the mask covers all of it
        gen.inpaint(torch.zeros(N + 1), (0, 1.5), _clap(1), sample_rate=24000)
    with pytest.raises(ValueError, match="keep_scales must lie in"):
        gen.vary(torch.zeros(N), 24000, keep_scales=20, clap_emb=_clap(1))
    with pytest.raises(ValueError, match="audio 2, condition 3"):
        gen.vary(torch.zeros(2, 1, N), 24000, keep_scales=2, clap_emb=_clap(3))


def test_plan_ids_are_checked_where_forced(gen):
    codes = _random_codes(gen, 1)
    mask = [torch.zeros_like(c, dtype=torch.bool) for c in codes]
    mask[3][0, 1] = True
    junk = [c.clone() for c in codes]
    junk[5][0, 0] = -1  # not forced: never used
    out = gen.generate_codes(_clap(1), seed=0, forced=ForcedTokens(mask, junk))
    assert out[3][0, 0, 1] == codes[3][0, 1]
    junk[3][0, 1] = gen.config.codebook_size
    with pytest.raises(ValueError, match="forced.tokens: codes\\[3\\]"):
        gen.generate_codes(_clap(1), seed=0, forced=ForcedTokens(mask, junk))
