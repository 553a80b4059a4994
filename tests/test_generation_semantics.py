"""Generation semantics: one dtype rule, arguments checked before CLAP, top-k, callbacks, progress bars."""

from __future__ import annotations

import pytest
import torch
from test_generator import _clap, tiny_generator

from aar import AARConfig, AARGenerator, SATConfig, SATTokenizer
from aar.generation.next_scale import ScaleProgress

N = 24000
SMALL_SAT = SATConfig(n_filters=4, dimension=8, latent_dim=8, codebook_size=64)


def small_vocab_generator() -> AARGenerator:
    """A generator with 64 codes, fewer than the default top_k of 200."""
    torch.manual_seed(0)
    config = AARConfig(depth=1, embed_dim=32, num_heads=1, latent_dim=8, codebook_size=64)
    return AARGenerator(config, SATTokenizer(SMALL_SAT)).eval()


@pytest.fixture(scope="module")
def gen():
    return tiny_generator(depth=1, heads=1)


# ---------------------------------------------------------------------------- dtypes
def _dtypes(gen: AARGenerator) -> dict[str, torch.dtype]:
    t = gen.transformer
    return {
        "matrix": t.blocks[0].attn.mat_qkv.weight.dtype,
        "word_embed": t.word_embed.weight.dtype,
        "head": t.head.weight.dtype,
        "pos": t.pos_1LC.dtype,
        "lvl": t.lvl_embed.weight.dtype,
        "bias": t.blocks[0].ffn.fc1.bias.dtype,
        "uncond": t.uncond_embedding.dtype,
        "tokenizer": gen.tokenizer.dtype,
        "codebook": gen.tokenizer.quantizer.codebooks[0].weight.dtype,
    }


METHODS = {torch.bfloat16: "bfloat16", torch.float16: "half", torch.float32: "float", torch.float64: "double"}


@pytest.mark.parametrize("dtype", list(METHODS))
def test_every_dtype_method_casts_everything_as_nn_module_does(dtype):
    """``to(dtype=...)``, ``to(dtype)`` and the shorthand methods are ``nn.Module``'s: every part
    takes the dtype, the tokenizer too; the reduced-precision path is ``set_precision`` instead."""
    by_to = tiny_generator(depth=1, heads=1).to(dtype=dtype)
    by_positional = tiny_generator(depth=1, heads=1).to(dtype)
    by_method = getattr(tiny_generator(depth=1, heads=1), METHODS[dtype])()
    for gen in (by_to, by_positional, by_method):
        assert set(_dtypes(gen).values()) == {dtype}
        assert gen.dtype == dtype
    assert isinstance(by_method, AARGenerator)
    clap = _clap(1)
    assert torch.equal(by_to.generate_codes(clap, seed=1)[-1], by_method.generate_codes(clap, seed=1)[-1])


def test_float_restores_a_reduced_precision_generator():
    gen = tiny_generator(depth=1, heads=1)
    reference = gen.generate_codes(_clap(2), seed=3)
    gen.bfloat16().float()
    assert set(_dtypes(gen).values()) == {torch.float32}
    # bfloat16 rounding of the matrix weights is not undone, but the rule is: float32 everywhere
    assert gen.generate_codes(_clap(2), seed=3).codes[0].shape == reference.codes[0].shape


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_tokenizer_dtype_methods_agree_with_to(dtype):
    torch.manual_seed(0)
    by_to = SATTokenizer(SMALL_SAT).to(dtype=dtype)
    torch.manual_seed(0)
    by_method = getattr(SATTokenizer(SMALL_SAT), METHODS[dtype])()
    for a, b in zip(by_to.state_dict().values(), by_method.state_dict().values()):
        assert a.dtype == b.dtype == (dtype if a.is_floating_point() else a.dtype)
        assert torch.equal(a, b)
    assert by_method.dtype == dtype


# ---------------------------------------------------------------------------- top_k
def test_default_top_k_on_a_small_vocabulary_keeps_every_code():
    gen = small_vocab_generator()
    clap = _clap(2)
    default = gen.generate_codes(clap, seed=5)  # top_k=200 > 64 codes
    for off in (None, 0, 64, 10**6):
        assert all(torch.equal(a, b) for a, b in zip(gen.generate_codes(clap, seed=5, top_k=off), default))
    assert gen.generate(clap, seed=5).shape == (2, 1, N)


# ---------------------------------------------------------------------------- checks before CLAP
class RecordingClap:
    """A CLAP stand-in that records every call (and would answer with fixed unit vectors)."""

    def __init__(self):
        self.calls = []

    def embed_text(self, prompt):
        self.calls.append(("text", prompt))
        return _clap(1 if isinstance(prompt, str) else len(prompt))

    def embed_audio(self, audio, sample_rate):
        self.calls.append(("audio", tuple(audio.shape), sample_rate))
        return _clap(audio.shape[0])


WAV = torch.zeros(1, 1, N)
BAD_CALLS = {
    "top_k": (lambda g: g.generate_codes(prompt="rain", top_k=-1), ValueError, "top_k"),
    "top_p": (lambda g: g.generate_codes(prompt="rain", top_p=2.0), ValueError, "top_p"),
    "temperature": (lambda g: g.generate(prompt="rain", temperature=0), ValueError, "temperature"),
    "cfg": (lambda g: g.generate_codes(prompt="rain", cfg="4"), TypeError, "cfg"),
    "seed": (lambda g: g.generate_codes(prompt="rain", seed=1.5), TypeError, "seed"),
    "seed and generator": (lambda g: g.generate_codes(prompt="rain", seed=1, generator=torch.Generator()),
                           ValueError, "not both"),
    "callback": (lambda g: g.generate_codes(prompt="rain", callback="print"), TypeError, "callable"),
    "prefix": (lambda g: g.generate_codes(prompt="rain", keep_scales=3), ValueError, "needs prefix"),
    "forced": (lambda g: g.generate_codes(prompt="rain", forced=[1]), TypeError, "ForcedTokens"),
    "prompt type": (lambda g: g.generate_codes(prompt=3), TypeError, "prompt must be a str"),
    "prompt list": (lambda g: g.generate_codes(prompt=[]), ValueError, "empty"),
    "audio rate": (lambda g: g.generate_codes(audio=WAV, sample_rate=-5), ValueError, "sample_rate"),
    "seconds": (lambda g: g.generate(prompt="rain", seconds=0), ValueError, "seconds"),
    "overlap": (lambda g: g.generate(prompt="rain", seconds=2, overlap=1.5), ValueError, "overlap"),
    "long top_p": (lambda g: g.generate(prompt="rain", seconds=2, top_p=0), ValueError, "top_p"),
    "long callback": (lambda g: g.generate(prompt="rain", seconds=2, callback=3), TypeError, "callable"),
    "vary knob": (lambda g: g.vary(WAV, N, keep_scales=2, temperature=-1), ValueError, "temperature"),
    "vary typo": (lambda g: g.vary(WAV, N, keep_scales=2, topk=5), TypeError, "topk"),
    "vary rate": (lambda g: g.vary(WAV, 0, keep_scales=2), ValueError, "sample_rate"),
    "inpaint knob": (lambda g: g.inpaint(WAV, (0, 0.5), sample_rate=N, seed="x"), TypeError, "seed"),
    "inpaint mask": (lambda g: g.inpaint(WAV, (0.5, 0.2), sample_rate=N), ValueError, "start <= end"),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_arguments_are_checked_before_clap_and_encoding(name, monkeypatch):
    call, error, match = BAD_CALLS[name]
    gen = tiny_generator(depth=1, heads=1)
    clap = gen.clap_encoder = RecordingClap()
    encoded = []
    monkeypatch.setattr(gen.tokenizer, "encode", lambda *a, **k: encoded.append(a))
    with pytest.raises(error, match=match):
        call(gen)
    assert clap.calls == [] and encoded == []


def test_clap_is_not_loaded_before_the_arguments_are_checked(monkeypatch):
    import aar.conditioning.clap

    loads = []
    monkeypatch.setattr(aar.conditioning.clap.ClapEncoder, "from_pretrained",
                        classmethod(lambda *a, **k: loads.append(a)))
    gen = tiny_generator(depth=1, heads=1)
    with pytest.raises(ValueError, match="top_p"):
        gen.generate_codes(prompt="rain", top_p=1.5)
    assert loads == [] and gen.clap_encoder is None


def test_good_arguments_reach_clap_once():
    gen = tiny_generator(depth=1, heads=1)
    clap = gen.clap_encoder = RecordingClap()
    gen.generate_codes(prompt=["rain", "wind"], seed=0, top_k=5)
    assert clap.calls == [("text", ["rain", "wind"])]


# ---------------------------------------------------------------------------- callbacks
def test_callback_sees_every_scale_in_order_and_changes_nothing(gen):
    clap, S, seen = _clap(3), gen.config.num_scales, []
    plain = gen.generate_codes(clap, seed=11)
    watched = gen.generate_codes(clap, seed=11, callback=seen.append)
    assert all(torch.equal(a, b) for a, b in zip(plain, watched))
    assert [p.index for p in seen] == list(range(S)) and {p.num_scales for p in seen} == {S}
    assert {(p.window, p.num_windows) for p in seen} == {(0, 1)}
    for p in seen:
        assert isinstance(p, ScaleProgress) and len(p.codes) == p.index + 1
        assert [tuple(c.shape) for c in p.codes] == [(3, s) for s in gen.config.scales[: p.index + 1]]
        assert all(c.dtype == torch.int64 for c in p.codes)
    assert all(torch.equal(a, b[:, 0]) for a, b in zip(seen[-1].codes, watched))


def test_callback_cannot_alter_the_tokens(gen):
    clap = _clap(2)

    def vandal(p: ScaleProgress) -> None:
        for c in p.codes:
            c.fill_(0)

    assert all(torch.equal(a, b) for a, b in zip(gen.generate_codes(clap, seed=2, callback=vandal),
                                                  gen.generate_codes(clap, seed=2)))


def test_callback_preview_decodes_coarse_to_fine(gen):
    previews = []
    gen.generate_codes(_clap(1), seed=0, callback=lambda p: previews.append(
        gen.tokenizer.decode(list(p.codes), num_scales=p.index + 1)))
    assert len(previews) == gen.config.num_scales and all(a.shape == (1, 1, N) for a in previews)


def test_callback_exception_propagates_and_empties_the_cache(monkeypatch):
    gen = tiny_generator(depth=1, heads=1)
    caches = []
    make_cache = gen.transformer.kv_cache
    monkeypatch.setattr(gen.transformer, "kv_cache", lambda: caches.append(make_cache()) or caches[-1])

    class Stop(Exception):
        pass

    def stop_at_three(p: ScaleProgress) -> None:
        if p.index == 3:
            raise Stop(p.index)

    clap = _clap(2)
    with pytest.raises(Stop):
        gen.generate_codes(clap, seed=4, callback=stop_at_three)
    assert len(caches) == 1 and caches[0].num_tokens == 0 and caches[0].num_scales == 0
    again = gen.generate_codes(clap, seed=4)  # the model is usable and unchanged
    fresh = tiny_generator(depth=1, heads=1).generate_codes(clap, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(again, fresh))


def test_long_generation_callback_names_the_window(gen):
    seen = []
    audio = gen.generate(_clap(1), seconds=1.6, overlap=0.25, seed=0, callback=seen.append)
    plain = gen.generate(_clap(1), seconds=1.6, overlap=0.25, seed=0)
    assert torch.equal(audio, plain)
    S = gen.config.num_scales
    expected = [(w, 2, si) for w in range(2) for si in range(S)]
    assert [(p.window, p.num_windows, p.index) for p in seen] == expected


def test_vary_and_inpaint_pass_the_callback_on(gen):
    seen, wav = [], torch.randn(1, 1, 2 * N, generator=torch.Generator().manual_seed(0)) * 0.1
    gen.vary(wav, N, keep_scales=4, clap_emb=_clap(1), seed=0, callback=seen.append)
    assert len(seen) == gen.config.num_scales and seen[0].codes[0].shape == (2, 1)  # B * W rows
    encoded = gen.tokenizer.encode(wav, N)
    for si in range(4):  # the kept scales are the encoded ones, window w in row w
        assert torch.equal(seen[-1].codes[si], encoded[si].reshape(2, -1))
    seen.clear()
    gen.inpaint(torch.zeros(1, 1, N), (0, 0.5), _clap(1), sample_rate=N, seed=0, callback=seen.append)
    assert [p.index for p in seen] == list(range(gen.config.num_scales))


# ---------------------------------------------------------------------------- progress bars
@pytest.fixture()
def bars(monkeypatch):
    """Records the ``desc`` of every tqdm bar that is created."""
    import tqdm.auto

    made = []
    real = tqdm.auto.tqdm

    def recording(*args, **kwargs):
        made.append(kwargs.get("desc"))
        return real(*args, **{**kwargs, "disable": True})

    monkeypatch.setattr(tqdm.auto, "tqdm", recording)
    return made


def test_progress_bars_follow_progress(gen, bars):
    wav = torch.zeros(1, 1, 2 * N)
    gen.vary(wav, N, keep_scales=4, clap_emb=_clap(1), seed=0)
    gen.inpaint(wav[..., :N], (0, 0.5), _clap(1), sample_rate=N, seed=0)
    gen.generate(_clap(1), seconds=1.5, seed=0)
    assert bars == []
    gen.vary(wav, N, keep_scales=4, clap_emb=_clap(1), seed=0, progress=True)
    assert "generate" in bars
    bars.clear()
    gen.inpaint(wav[..., :N], (0, 0.5), _clap(1), sample_rate=N, seed=0, progress=True)
    assert bars == ["generate"]
    bars.clear()
    gen.generate(_clap(1), seconds=1.5, seed=0, progress=True)
    assert bars == ["generate"]  # one bar over the windows, none per window


@pytest.mark.parametrize("quiet", [False, True])
def test_cli_vary_shows_progress_unless_quiet(quiet, bars, tmp_path):
    import numpy as np
    import soundfile as sf
    from conftest import AAR_PTH, SAT_PTH

    from aar.cli import main

    clap = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    np.save(tmp_path / "clap.npy", clap / np.linalg.norm(clap))
    sf.write(tmp_path / "in.wav", np.zeros(30000, dtype=np.float32), 24000)
    argv = ["vary", str(tmp_path / "in.wav"), "-o", str(tmp_path / "out.wav"), "--keep-scales", "8",
            "--clap", str(tmp_path / "clap.npy"), "--model", str(AAR_PTH), "--tokenizer", str(SAT_PTH)]
    assert main(argv + (["--quiet"] if quiet else ["--progress"])) == 0  # stderr is captured: no terminal
    assert ("generate" in bars) is not quiet
