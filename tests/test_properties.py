"""Properties of the tokenizer over generated audio: lengths, code ranges, determinism, batching.

Inputs run from 1 sample to 5 s, batches of 1 to 4, mono or stereo, at 8, 16, 22.05, 24, 44.1 and
48 kHz. Most properties use the tiny config; one runs on the official fixture tokenizer.
"""

import math

import numpy as np
import pytest
import torch
from conftest import SAT_PTH, TINY_SAT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aar import AudioCodes, SATTokenizer
from aar.loading.codes_file import load_codes, save_codes

RATES = (8000, 16000, 22050, 24000, 44100, 48000)
MAX_SECONDS = 5
#: Module-scoped models are shared by the examples of a property; nothing here mutates them.
SHARED_FIXTURES = [HealthCheck.function_scoped_fixture]


@pytest.fixture(scope="module")
def tiny() -> SATTokenizer:
    torch.manual_seed(0)
    return SATTokenizer(TINY_SAT).eval()


@pytest.fixture(scope="module")
def official() -> SATTokenizer:
    return SATTokenizer.from_pretrained(SAT_PTH)


@st.composite
def audio(draw, max_seconds: float = MAX_SECONDS, max_batch: int = 4):
    """``(wav (B, C, T), sample_rate)``: noise plus a tone, T from 1 sample to ``max_seconds``."""
    rate = draw(st.sampled_from(RATES))
    longest = int(max_seconds * rate)
    # Short clips keep the examples fast; window edges and the full range are drawn as often.
    length = draw(st.one_of(
        st.integers(1, 600),
        st.sampled_from([rate - 1, rate, rate + 1, 2 * rate + 1, longest]).filter(lambda n: n <= longest),
        st.integers(1, longest),
    ))
    batch = draw(st.integers(1, max_batch))
    channels = draw(st.integers(1, 2))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    t = torch.arange(length) / rate
    tone = 0.3 * torch.sin(2 * math.pi * draw(st.floats(50, 3000)) * t)
    wav = tone + 0.2 * torch.randn(batch, channels, length, generator=g)
    return wav, rate


def expected_length(samples: int, rate: int) -> int:
    """conventions.md: the length at 24 kHz is ceil(T * 24000 / sr), exactly, in integers."""
    return -(-samples * 24000 // rate)


def check_codes(tok: SATTokenizer, codes: AudioCodes, batch: int, length: int, rate: int) -> None:
    windows = -(-length // tok.config.window)
    assert (codes.length, codes.sample_rate) == (length, rate)
    assert len(codes) == tok.config.num_scales
    for i, (c, s) in enumerate(zip(codes, tok.config.scales)):
        assert c.shape == (batch, windows, s) and c.dtype == torch.long, i
        assert 0 <= int(c.min()) and int(c.max()) < tok.config.codebook_size, i


def items_alone(tok: SATTokenizer, wav: torch.Tensor, rate: int) -> list[AudioCodes]:
    return [tok.encode(wav[b : b + 1], rate) for b in range(wav.shape[0])]


# ------------------------------------------------------------------------------------ tiny config
@settings(max_examples=20, suppress_health_check=SHARED_FIXTURES)
@given(data=audio())
def test_lengths_code_ranges_and_determinism(tiny, data):
    wav, rate = data
    B, _, T = wav.shape
    length = expected_length(T, rate)
    assert length >= 1
    codes = tiny.encode(wav, rate)
    check_codes(tiny, codes, B, length, rate)
    assert codes.equal(tiny.encode(wav, rate))  # run twice: the same tokens
    out = tiny.decode(codes)
    assert out.shape == (B, 1, length) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@settings(max_examples=15, suppress_health_check=SHARED_FIXTURES)
@given(data=audio(), window_batch=st.integers(1, 8))
def test_batching_does_not_change_results(tiny, data, window_batch):
    """A batch gives each item's own tokens and audio, whatever the windows per forward pass."""
    wav, rate = data
    codes = tiny.encode(wav, rate, batch_size=window_batch)
    decoded = tiny.decode(codes)
    for b, single in enumerate(items_alone(tiny, wav, rate)):
        assert all(torch.equal(codes[i][b : b + 1], single[i]) for i in range(len(codes))), f"item {b}"
        torch.testing.assert_close(decoded[b : b + 1], tiny.decode(single, batch_size=window_batch),
                                   atol=1e-5, rtol=0)


@settings(max_examples=15, suppress_health_check=SHARED_FIXTURES)
@given(data=audio(max_seconds=1, max_batch=2), bits=st.sampled_from([16, 32]))
def test_integer_pcm_is_scaled_to_full_scale(tiny, data, bits):
    """int16/int32 PCM means value / 2**(bits-1): never read as floats, for tensors and arrays."""
    wav, rate = data
    full = 2.0 ** (bits - 1)
    dtype = {16: torch.int16, 32: torch.int32}[bits]
    pcm = (wav.clamp(-1, 1 - 1 / full) * full).round().to(torch.float64).to(dtype)
    as_float = tiny.encode((pcm.to(torch.float64) / full).to(torch.float32), rate)
    assert tiny.encode(pcm, rate).equal(as_float)
    assert tiny.encode(pcm.numpy(), rate).equal(as_float)


@settings(max_examples=30, suppress_health_check=SHARED_FIXTURES)
@given(
    batch=st.integers(1, 4),
    windows=st.integers(1, 3),
    cut=st.integers(0, 23999),
    rate=st.sampled_from(RATES),
    seed=st.integers(0, 2**31 - 1),
)
def test_codes_file_round_trip(tiny, tmp_path_factory, batch, windows, cut, rate, seed):
    g = torch.Generator().manual_seed(seed)
    V = tiny.config.codebook_size
    levels = tuple(torch.randint(0, V, (batch, windows, s), generator=g) for s in tiny.config.scales)
    codes = AudioCodes(levels, length=windows * 24000 - cut, sample_rate=rate)
    path = save_codes(tmp_path_factory.mktemp("codes") / "x.codes", codes, tiny)
    back = load_codes(path, tiny)
    assert back.equal(codes) and (back.length, back.sample_rate) == (codes.length, rate)
    assert tiny.decode(back, num_scales=1).shape == (batch, 1, codes.length)


# ------------------------------------------------------------------------------- official fixture
@settings(max_examples=5, suppress_health_check=SHARED_FIXTURES)
@given(data=audio(max_seconds=2, max_batch=3))
def test_official_tokenizer_properties(official, data):
    wav, rate = data
    B, _, T = wav.shape
    length = expected_length(T, rate)
    codes = official.encode(wav, rate)
    check_codes(official, codes, B, length, rate)
    assert codes.equal(official.encode(wav, rate))
    decoded = official.decode(codes)
    assert decoded.shape == (B, 1, length) and decoded.dtype == torch.float32
    last = B - 1
    single = official.encode(wav[last:], rate)
    assert all(torch.equal(codes[i][last:], single[i]) for i in range(16))
    torch.testing.assert_close(decoded[last:], official.decode(single), atol=1e-5, rtol=0)


def test_lengths_match_the_resampler():
    """The rule the properties check is what torchaudio's resampler returns (spot checks)."""
    import torchaudio.functional as AF

    for rate in RATES:
        for samples in (1, 7, rate - 1, rate + 3):
            out = AF.resample(torch.zeros(1, samples), rate, 24000)
            assert out.shape[-1] == expected_length(samples, rate) == math.ceil(
                np.float64(samples) * 24000 / rate
            )
