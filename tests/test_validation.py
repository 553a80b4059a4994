"""Public entry points refuse bad input by name, accept every integer dtype of codes, and honour
``device=``/``dtype=`` with float32 outputs. The quantizer's MPS fallback is exercised on the CPU.

Cases already covered elsewhere (NaN audio, ranks, sampling knobs, CLAP sizes, codes shapes and
ranges) are not repeated here.
"""

import pytest
import torch
from conftest import AAR_PTH, SAT_PTH, TINY_SAT
from stand_ins import stand_in_clap

import aar.nn.quantizer as quantizer_module
from aar import AARConfig, AARGenerator, SATTokenizer
from aar.nn.quantizer import quantizer_device


@pytest.fixture(scope="module")
def tok() -> SATTokenizer:
    torch.manual_seed(0)
    return SATTokenizer(TINY_SAT).eval()


@pytest.fixture(scope="module")
def gen(tok) -> AARGenerator:
    torch.manual_seed(1)
    config = AARConfig(depth=1, embed_dim=32, num_heads=1, latent_dim=TINY_SAT.latent_dim,
                       codebook_size=TINY_SAT.codebook_size)
    return AARGenerator(config, tok).eval()


def _clap(batch=1, seed=0):
    v = torch.randn(batch, 512, generator=torch.Generator().manual_seed(seed))
    return v / v.norm(dim=1, keepdim=True)


# ---------------------------------------------------------------------------------------- audio
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int64, torch.complex64, torch.bool])
@pytest.mark.parametrize("entry", ["tokenizer", "clap"])
def test_audio_of_other_dtypes_is_refused_not_read_as_floats(tok, entry, dtype):
    wav = torch.zeros(1, 2400, dtype=dtype)
    embed = tok.encode if entry == "tokenizer" else stand_in_clap().embed_audio
    with pytest.raises(TypeError, match=rf"dtype {dtype}; allowed: floating point, or int16/int32 PCM"):
        embed(wav, 24000)
    with pytest.raises(TypeError, match="allowed"):
        embed(wav.numpy(), 24000)


def test_int32_pcm_reaches_clap_scaled(tok):
    clap = stand_in_clap()
    pcm = (torch.linspace(-0.9, 0.9, 24000) * 2**31).to(torch.int32)
    torch.testing.assert_close(clap.embed_audio(pcm, 24000), clap.embed_audio(pcm.double() / 2**31, 24000),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_float_audio_of_any_width_is_accepted(tok, dtype):
    wav = 0.1 * torch.randn(1, 1, 4000, generator=torch.Generator().manual_seed(0))
    codes = tok.encode(wav.to(dtype), 24000)
    assert codes.equal(tok.encode(wav.to(dtype).float(), 24000))


@pytest.mark.parametrize("rate", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("entry", ["tokenizer", "clap"])
def test_non_finite_sample_rates_are_refused(tok, entry, rate):
    embed = tok.encode if entry == "tokenizer" else stand_in_clap().embed_audio
    with pytest.raises(ValueError, match=f"positive integer.*got {rate!r}"):
        embed(torch.zeros(100), rate)


# ---------------------------------------------------------------------------------------- codes
@pytest.mark.parametrize("dtype", [torch.int16, torch.int32, torch.uint8])
def test_codes_of_any_integer_dtype_decode_alike(tok, dtype):
    codes = tok.encode(0.1 * torch.randn(2, 1, 30000, generator=torch.Generator().manual_seed(1)), 24000)
    narrow = [c.clamp(max=255).to(dtype) for c in codes]
    wide = [c.long() for c in narrow]
    assert torch.equal(tok.decode(narrow), tok.decode(wide))
    assert all(c.dtype == torch.long for c in tok.check_codes(narrow))


def test_generator_scores_codes_of_any_integer_dtype(gen):
    clap = _clap(2)
    codes = gen.generate_codes(clap, seed=0)
    narrow = [c.to(torch.int16) for c in codes]
    assert torch.equal(gen.logits(narrow, clap), gen.logits(codes, clap))
    assert torch.equal(gen.log_likelihood(narrow, clap), gen.log_likelihood(codes, clap))


@pytest.mark.parametrize("lead", [(0, 1), (1, 0)])
def test_empty_codes_are_refused(tok, lead):
    codes = [torch.zeros(*lead, s, dtype=torch.long) for s in tok.config.scales]
    with pytest.raises(ValueError, match=rf"codes are empty: batch and windows are \({lead[0]}, {lead[1]}\)"):
        tok.decode(codes)


# -------------------------------------------------------------------------------- device / dtype
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(device="gpu0"), "device must be a torch.device.*got 'gpu0'"),
        (dict(device=3.5), "device must be"),
        (dict(dtype=torch.complex64),
         r"dtype must be one of \['float32', 'bfloat16', 'float16', 'float64'\]"),
        (dict(dtype=torch.int32), "got torch.int32"),
        (dict(dtype="half precision"), "got 'half precision'"),
    ],
)
@pytest.mark.parametrize("kind", ["sat", "aar"])
def test_bad_device_and_dtype_are_refused_before_loading(kind, kwargs, match, monkeypatch):
    import aar.loading.hub

    def no_reading(*args, **kwargs):
        raise AssertionError("files were resolved before the arguments were checked")

    monkeypatch.setattr(aar.loading.hub, "resolve", no_reading)
    with pytest.raises(ValueError, match=match):
        if kind == "sat":
            SATTokenizer.from_pretrained(SAT_PTH, **kwargs)
        else:
            AARGenerator.from_pretrained(AAR_PTH, tokenizer=SAT_PTH, **kwargs)


@pytest.mark.parametrize(
    "dtype, atol, agreement",
    [(torch.float64, 1e-5, 1.0), (torch.float16, 0.01, 0.6), (torch.bfloat16, 0.05, 0.6),
     ("bfloat16", 0.05, 0.6)],
)
def test_tokenizer_dtypes_give_float32_outputs_close_to_float32(official_tokenizer, reference, dtype, atol,
                                                                  agreement):
    tok = SATTokenizer.from_pretrained(SAT_PTH, device="cpu", dtype=dtype)
    assert tok.dtype == (torch.bfloat16 if dtype == "bfloat16" else dtype)
    wav = reference["audio"][:1, :, :36000]
    codes = official_tokenizer.encode(wav, 24000)
    expected = official_tokenizer.decode(codes)
    out = tok.decode(codes)
    assert out.dtype == torch.float32 and out.device.type == "cpu" and out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=atol, rtol=0)
    mine = tok.encode(wav, 24000)
    same = sum(torch.eq(a, b).float().mean().item() for a, b in zip(mine, codes)) / len(codes)
    assert same >= agreement and torch.equal(mine[0], codes[0])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_generator_dtypes_give_float32_outputs(official_generator, reference, dtype):
    gen = AARGenerator.from_pretrained(AAR_PTH, tokenizer=SAT_PTH, device="cpu", dtype=dtype)
    clap = reference["clap"]
    audio = gen.generate(clap, seed=0, top_k=1, top_p=None)
    assert audio.dtype == torch.float32 and audio.device.type == "cpu" and audio.shape == (2, 1, 24000)
    assert torch.isfinite(audio).all() and audio.abs().max() < 10
    codes = official_generator.generate_codes(clap, seed=0, top_k=1, top_p=None)
    logits = gen.logits(codes, clap)
    assert logits.dtype == torch.float32
    # Low-precision weights keep most greedy choices of the float32 model.
    agree = (logits.argmax(-1) == official_generator.logits(codes, clap).argmax(-1)).float().mean()
    assert agree >= (0.999 if dtype == torch.float64 else 0.8)


def test_condition_of_another_dtype_is_converted(gen):
    clap = _clap(1)
    expected = gen.generate_codes(clap, seed=3)
    assert gen.generate_codes(clap.double(), seed=3).equal(expected)
    assert gen.generate_codes(clap.double().numpy(), seed=3).equal(expected)


# ------------------------------------------------------------------------------- MPS fallback
def test_quantizer_device_sends_only_mps_to_the_cpu():
    assert quantizer_device(torch.device("mps")) == torch.device("cpu")
    assert quantizer_device(torch.device("mps:0")) == torch.device("cpu")
    for name in ("cpu", "cuda", "cuda:1", "meta"):
        assert quantizer_device(torch.device(name)) == torch.device(name)


def test_quantizer_fallback_path_gives_the_same_codes_and_audio(tok, monkeypatch):
    """Route the quantizer to another device, as MPS tensors are, and check the results and devices."""
    wav = 0.1 * torch.randn(2, 1, 30000, generator=torch.Generator().manual_seed(2))
    codes, audio = tok.encode(wav, 24000), tok.decode(tok.encode(wav, 24000))
    asked = []

    def elsewhere(device):
        asked.append(device)
        return torch.device("cpu", 0)  # not equal to the tensors' "cpu": the fallback branch runs

    monkeypatch.setattr(quantizer_module, "quantizer_device", elsewhere)
    routed = tok.encode(wav, 24000)
    assert routed.equal(codes) and all(c.device == codes[0].device for c in routed)
    torch.testing.assert_close(tok.decode(routed), audio, atol=0, rtol=0)
    assert asked and all(d == torch.device("cpu") for d in asked)


def test_clap_encoder_refuses_a_bad_device_before_loading(tmp_path):
    from aar.conditioning.clap import ClapEncoder

    for backend in ("laion-clap", "transformers"):
        with pytest.raises(ValueError, match="device must be a torch.device.*got 'gpu0'"):
            ClapEncoder.from_pretrained(tmp_path / "nothing", backend=backend, device="gpu0")
