"""SATTokenizer behaviour: input shapes, rates, lengths, batching, partial decoding, bad input."""

import math

import numpy as np
import pytest
import torch

from aar import AudioCodes
from aar.nn.quantizer import ScaleQuantizer


def _sine(seconds: float, rate: int, channels: int = 1, batch: int = 1) -> torch.Tensor:
    t = torch.arange(round(seconds * rate)) / rate
    tone = 0.5 * torch.sin(2 * math.pi * 220 * t) + 0.1 * torch.sin(2 * math.pi * 1234 * t)
    return tone.expand(batch, channels, -1).clone()


@pytest.mark.parametrize(
    "shape", [(24000,), (1, 24000), (2, 24000), (3, 1, 24000), (2, 2, 24000)]
)
def test_input_ranks(tiny_tokenizer, shape):
    codes = tiny_tokenizer.encode(torch.randn(shape) * 0.1, 24000)
    batch = shape[0] if len(shape) == 3 else 1
    assert isinstance(codes, AudioCodes) and len(codes) == 16
    assert [tuple(c.shape) for c in codes] == [(batch, 1, s) for s in tiny_tokenizer.config.scales]
    assert all(c.dtype == torch.long for c in codes)


@pytest.mark.parametrize("length", [1, 23999, 24000, 24001])
def test_lengths(official_tokenizer, length):
    wav = _sine(length / 24000, 24000)
    codes = official_tokenizer.encode(wav, sample_rate=24000)
    assert codes.num_windows == math.ceil(length / 24000) and codes.length == length
    assert official_tokenizer.decode(codes).shape == (1, 1, length)


@pytest.mark.parametrize("rate", [16000, 44100, 22050, 8000, 48000])
def test_other_rates_keep_duration(official_tokenizer, rate):
    wav = _sine(1.3, rate)
    codes = official_tokenizer.encode(wav, sample_rate=rate)
    expected = math.ceil(wav.shape[-1] * 24000 / rate)
    assert codes.sample_rate == rate and codes.length == expected
    assert official_tokenizer.decode(codes).shape[-1] == expected


def test_resampling_is_torchaudio(official_tokenizer):
    import torchaudio.functional as AF

    wav = _sine(1.0, 16000)
    direct = official_tokenizer.encode(AF.resample(wav, 16000, 24000), sample_rate=24000)
    assert official_tokenizer.encode(wav, sample_rate=16000).equal(direct)


def test_stereo_is_averaged(official_tokenizer):
    left, right = _sine(1.0, 24000), 0.3 * torch.randn(1, 1, 24000)
    stereo = torch.cat([left, right], dim=1)
    mono = official_tokenizer.encode((left + right) / 2, 24000)
    assert official_tokenizer.encode(stereo, 24000).equal(mono)


def test_numpy_and_int16_input(official_tokenizer):
    wav = (_sine(0.5, 24000)[0, 0] * 32767).round().to(torch.int16)
    as_float = official_tokenizer.encode(wav.to(torch.float32) / 32768, 24000)
    assert official_tokenizer.encode(wav.numpy(), 24000).equal(as_float)
    assert official_tokenizer.encode(wav, 24000).equal(as_float)
    as_float64 = (wav.to(torch.float32) / 32768).numpy().astype(np.float64)
    assert official_tokenizer.encode(as_float64, 24000).equal(as_float)


def test_batch_equals_single(official_tokenizer, reference):
    audio = reference["audio"]
    both = official_tokenizer.encode(audio, 24000)
    for b in range(2):
        alone = official_tokenizer.encode(audio[b : b + 1], 24000)
        assert all(torch.equal(both[i][b : b + 1], alone[i]) for i in range(16))
    decoded = official_tokenizer.decode(both)
    tail = official_tokenizer.encode(audio[1:], 24000)
    torch.testing.assert_close(decoded[1:], official_tokenizer.decode(tail))


def test_window_batch_size_does_not_change_results(official_tokenizer, reference):
    a = official_tokenizer.encode(reference["audio"], 24000, batch_size=1)
    b = official_tokenizer.encode(reference["audio"], 24000, batch_size=7)
    assert a.equal(b)
    torch.testing.assert_close(official_tokenizer.decode(a, batch_size=1),
                               official_tokenizer.decode(b, batch_size=5))


def test_windows_are_independent_and_in_order(official_tokenizer, reference):
    audio = reference["audio"][:1]
    codes = official_tokenizer.encode(audio, 24000)
    second = official_tokenizer.encode(audio[..., 24000:48000], 24000)
    assert all(torch.equal(codes[i][:, 1:2], second[i]) for i in range(16))


def test_partial_scale_decoding(official_tokenizer, reference):
    tok = official_tokenizer
    codes = tok.encode(reference["audio"][:1, :, :24000], 24000)
    full = tok.decode(codes)
    torch.testing.assert_close(tok.decode(codes, num_scales=16), full)
    for k in (1, 4, 9):
        preview = tok.decode(codes, num_scales=k)
        assert preview.shape == full.shape
        window = [c[:, 0] for c in codes][:k]
        expected = tok.decoder(tok.quantizer.to_decoder(tok.quantizer.decode_latent(window)))
        torch.testing.assert_close(preview, expected, atol=1e-6, rtol=0)
        assert not torch.allclose(preview, full)
    # Only the first k scales are needed for a preview.
    torch.testing.assert_close(tok.decode(list(codes)[:4], num_scales=4, length=24000),
                               tok.decode(codes, num_scales=4))


def test_decode_one_window_list(official_tokenizer, reference):
    window = [reference[f"codes.{i}"][:, 0] for i in range(16)]
    out = official_tokenizer.decode(window, length=1000)
    assert out.shape == (2, 1, 1000)
    torch.testing.assert_close(out, reference["recon"][..., :1000], atol=1e-4, rtol=0)


def test_coarse_scales_carry_less_detail(official_tokenizer, reference):
    """Reconstructing the latent from more scales gets closer to the encoder output."""
    tok = official_tokenizer
    wav = reference["audio"][:, :, :24000]
    with torch.inference_mode():
        e = tok.encoder(wav)
        target = tok.quantizer.project_in(e.transpose(1, 2)).transpose(1, 2)
        codes = tok.quantizer.encode(e)
        errors = [
            (tok.quantizer.decode_latent(codes[:k]) - target).pow(2).mean().item() for k in (1, 8, 16)
        ]
    assert errors[0] > errors[1] > errors[2]


def test_quantizer_identity_projection():
    q = ScaleQuantizer(8, 8, (1, 2, 4), 16, (0, 0, 1))
    assert isinstance(q.project_in, torch.nn.Identity) and isinstance(q.project_out, torch.nn.Identity)


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "wav, match",
    [
        (torch.full((1, 100), float("nan")), "NaN or Inf"),
        (torch.tensor([0.0, float("inf")]), "NaN or Inf"),
        (torch.zeros(1, 0), "empty"),
        (torch.zeros(0, 1, 10), "empty"),
        (torch.zeros(1, 1, 1, 10), "got 4 dims"),
        (torch.tensor(0.5), "got 0 dims"),
    ],
)
def test_bad_audio_values(tiny_tokenizer, wav, match):
    with pytest.raises(ValueError, match=match):
        tiny_tokenizer.encode(wav, 24000)


@pytest.mark.parametrize(
    "wav", [[0.1, 0.2], "audio.wav", torch.zeros(10, dtype=torch.bool), torch.zeros(10, dtype=torch.int64)]
)
def test_bad_audio_types(tiny_tokenizer, wav):
    with pytest.raises(TypeError):
        tiny_tokenizer.encode(wav, 24000)


@pytest.mark.parametrize("rate", [0, -16000, 16000.5])
def test_bad_sample_rate_value(tiny_tokenizer, rate):
    with pytest.raises(ValueError, match=f"got {rate!r}"):
        tiny_tokenizer.encode(torch.zeros(100), sample_rate=rate)


@pytest.mark.parametrize("rate", ["24000", True, None.__class__])
def test_bad_sample_rate_type(tiny_tokenizer, rate):
    with pytest.raises(TypeError):
        tiny_tokenizer.encode(torch.zeros(100), sample_rate=rate)


def _valid_codes(tok, batch=1, windows=1):
    return [torch.zeros(batch, windows, s, dtype=torch.long) for s in tok.config.scales]


def test_bad_codes(tiny_tokenizer):
    tok = tiny_tokenizer
    V = tok.config.codebook_size
    codes = _valid_codes(tok)
    codes[3] = codes[3] + V
    with pytest.raises(ValueError, match=rf"codes\[3\].*allowed: \[0, {V}\)"):
        tok.decode(codes)
    codes = _valid_codes(tok)
    codes[0] = codes[0] - 1
    with pytest.raises(ValueError, match="allowed"):
        tok.decode(codes)
    with pytest.raises(ValueError, match="expected 16 scales of codes, got 15"):
        tok.decode(_valid_codes(tok)[:15])
    codes = _valid_codes(tok)
    codes[5] = torch.zeros(1, 1, 13, dtype=torch.long)
    with pytest.raises(ValueError, match=r"codes\[5\] must be shaped \(B, W, 12\)"):
        tok.decode(codes)
    codes = _valid_codes(tok)
    codes[2] = codes[2].float()
    with pytest.raises(TypeError, match="integer token ids"):
        tok.decode(codes)
    with pytest.raises(TypeError):
        tok.decode(torch.zeros(1, 455, dtype=torch.long))
    for k in (0, 17, 2.0):
        with pytest.raises(ValueError, match="num_scales"):
            tok.decode(_valid_codes(tok), num_scales=k)
    with pytest.raises(ValueError, match="length must be"):
        tok.decode(_valid_codes(tok), length=24001)
    with pytest.raises(ValueError, match="batch_size"):
        tok.decode(_valid_codes(tok), batch_size=0)
