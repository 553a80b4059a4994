"""Known answers for aar.metrics: reconstruction distances, SI-SDR, Fréchet distance, ISc and KL."""

from __future__ import annotations

import doctest
import math
import re

import pytest
import torch

import aar.metrics.distribution as distribution_module
import aar.metrics.fadtk as fadtk_module
import aar.metrics.paired as reconstruction_module
from aar.errors import pip_command
from aar.metrics import (
    frechet_distance,
    inception_score,
    inception_score_splits,
    kl_divergence,
    mel_distance,
    si_sdr,
    stft_distance,
)
from aar.metrics.distribution import frechet_distance_from_statistics
from aar.metrics.fadtk import fadtk_distance, fadtk_statistics


def _noise(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_docstring_examples():
    assert doctest.testmod(reconstruction_module).failed == 0
    assert doctest.testmod(distribution_module, optionflags=doctest.ELLIPSIS).failed == 0


# ---------------------------------------------------------------------------------- reconstruction


MEL_FORMS = [pytest.param(lambda r, e, *a, d=d: mel_distance(r, e, *a, definition=d), id=f"mel-{d}")
             for d in ("official", "dac")]
SPECTRAL = MEL_FORMS + [pytest.param(stft_distance, id="stft-auraloss")]


@pytest.mark.parametrize("metric", MEL_FORMS)
def test_mel_distances_zero_positive_symmetric(metric):
    ref = _noise(3, 1, 6000)
    est = ref + 0.1 * _noise(3, 1, 6000, seed=1)
    assert metric(ref, ref).tolist() == [0.0, 0.0, 0.0]
    forward, backward = metric(ref, est), metric(est, ref)
    assert forward.shape == (3,)
    assert (forward > 0).all()
    torch.testing.assert_close(forward, backward, rtol=0, atol=1e-6)
    # a larger error gives a larger distance
    assert (metric(ref, ref + 0.5 * _noise(3, 1, 6000, seed=1)) > forward).all()


def test_stft_distance_is_normalised_by_the_reference():
    """Spectral convergence divides by the reference's norm, so the order of the arguments matters."""
    ref = _noise(3, 1, 6000)
    est = ref + 0.1 * _noise(3, 1, 6000, seed=1)
    assert stft_distance(ref, ref).tolist() == [0.0, 0.0, 0.0]
    assert (stft_distance(ref, est) > 0).all()
    assert not torch.allclose(stft_distance(ref, est), stft_distance(est, ref), rtol=1e-4)
    assert (stft_distance(ref, ref + 0.5 * _noise(3, 1, 6000, seed=1)) > stft_distance(ref, est)).all()


def _nonempty_share(window: int, mels: int, sample_rate: int = 24_000) -> float:
    """The share of a scale's mel bands that have any weight (64 bands on a 32-point FFT leave gaps)."""
    filters = reconstruction_module._mel_filters(window, mels, sample_rate)
    return float((filters.sum(0) > 0).double().mean())


def test_gain_closed_forms():
    """A gain of 2 shifts every log value by the same amount (no bin is near the floors); empty bands
    are 0 on both sides and dilute their scale. The signal is loud enough that no band with weights
    nears the 1e-5 floor."""
    ref = 10 * _noise(2, 1, 8000)
    # DAC (pow=1, magnitude): |log10(2 m) - log10(m)| = log10(2) on each of the seven scales, summed
    torch.testing.assert_close(mel_distance(ref, 2 * ref, definition="dac"),
                               torch.full((2,), 7 * math.log10(2)), rtol=0, atol=1e-4)
    # official (power spectrum, L1 + L2): log10(4) and its square on the bands that have weights
    shift = math.log10(4)
    expected = sum(_nonempty_share(w, m) * (shift + shift**2)
                   for w, _, m in reconstruction_module.MEL_DEFINITIONS["official"].scales)
    torch.testing.assert_close(mel_distance(ref, 2 * ref), torch.full((2,), expected), rtol=0, atol=1e-4)
    # STFT: spectral convergence ||X - 2X|| / ||X|| = 1 plus |ln(2 |X|) - ln |X|| = ln 2, per resolution
    torch.testing.assert_close(stft_distance(ref, 2 * ref), torch.full((2,), 1 + math.log(2)),
                               rtol=0, atol=1e-4)


@pytest.mark.parametrize("metric", SPECTRAL + [si_sdr])
def test_layouts_and_batch_independence(metric):
    ref, est = _noise(3, 1, 4000), _noise(3, 1, 4000, seed=1)
    batched = metric(ref, est)
    torch.testing.assert_close(metric(ref[:, 0], est[:, 0]), batched)
    torch.testing.assert_close(metric(ref[1, 0], est[1, 0]), batched[1:2], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(metric(ref.numpy(), est.numpy()), batched)  # numpy arrays as well
    assert metric(ref.double(), est).dtype == torch.float64


@pytest.mark.parametrize("metric, shortest", [(form.values[0], shortest)
                                               for form, shortest in zip(SPECTRAL, (769, 1025, 1025))])
def test_shortest_input_is_what_reflection_allows(metric, shortest):
    ref = _noise(1, 1, shortest)
    assert metric(ref, ref).tolist() == [0.0]
    assert float(metric(ref, _noise(1, 1, shortest, seed=1))[0]) > 0
    with pytest.raises(ValueError, match=f"{shortest - 1} samples are too few.*at least {shortest}"):
        metric(ref[..., 1:], ref[..., 1:])


@pytest.mark.parametrize("sample_rate, empty_bands", [(16_000, 0), (44_100, 0), (48_000, 2)])
def test_dac_mel_distance_rates_and_empty_bands(sample_rate, empty_bands, recwarn):
    """An empty band (48 kHz, windows 32 and 64) is 0 on both sides: the gain closed form loses its share.

    The signal is loud so that no other band reaches the 1e-5 floor (at 44.1 kHz the lowest band of the
    32-sample window has weights of only 6e-5)."""
    ref = 10 * _noise(1, 1, 8000)
    per_scale = math.log10(2)
    scales = reconstruction_module.MEL_DEFINITIONS["dac"].scales
    lost = per_scale * sum(1 / mels for window, _, mels in scales[:empty_bands])
    expected = 7 * per_scale - lost
    value = float(mel_distance(ref, 2 * ref, sample_rate, definition="dac")[0])
    assert value == pytest.approx(expected, abs=1e-4)
    assert not [w for w in recwarn if "mel filterbank" in str(w.message)]


def test_unknown_definition_is_named():
    with pytest.raises(ValueError, match="official.*'pow2'"):
        mel_distance(torch.zeros(4000), torch.zeros(4000), definition="pow2")
    with pytest.raises(ValueError, match="auraloss"):
        stft_distance(torch.zeros(4000), torch.zeros(4000), definition="dac")


def test_mel_distance_depends_on_sample_rate():
    ref, est = _noise(1, 1, 4000), _noise(1, 1, 4000, seed=1)
    assert not torch.allclose(mel_distance(ref, est, 16_000), mel_distance(ref, est, 24_000))


def _orthogonal_noise(ref_T: torch.Tensor, seed: int) -> torch.Tensor:
    noise = _noise(ref_T.numel(), seed=seed, dtype=torch.float64)
    noise = noise - noise.mean()
    return noise - (noise @ ref_T) / (ref_T @ ref_T) * ref_T


def test_si_sdr_matches_definition():
    ref = _noise(16_000, dtype=torch.float64)
    ref = ref - ref.mean()
    noise = _orthogonal_noise(ref, seed=1)
    for gain, noise_gain in [(1.0, 0.1), (0.3, 1.0), (2.5, 0.01)]:
        est = gain * ref + noise_gain * noise
        expected = 10 * math.log10(float((gain * ref).square().sum() / (noise_gain * noise).square().sum()))
        assert float(si_sdr(ref, est)[0]) == pytest.approx(expected, abs=1e-6)


def test_si_sdr_invariances():
    ref, est = _noise(2, 1, 4000), _noise(2, 1, 4000, seed=1) + _noise(2, 1, 4000)
    value = si_sdr(ref, est)
    torch.testing.assert_close(si_sdr(ref, 7.0 * est), value, rtol=0, atol=1e-4)  # scale
    torch.testing.assert_close(si_sdr(ref + 0.3, est - 0.2), value, rtol=0, atol=1e-4)  # offsets
    assert (si_sdr(ref, ref) > 60).all()  # identical: large and finite
    assert torch.isfinite(si_sdr(torch.zeros(1, 1, 100), _noise(1, 1, 100))).all()  # silent reference


@pytest.mark.parametrize("metric", SPECTRAL + [si_sdr])
@pytest.mark.parametrize(
    "ref, est, error, match",
    [
        (torch.zeros(2, 1, 100), torch.zeros(2, 1, 99), ValueError, "same shape"),
        (torch.zeros(2, 2, 100), torch.zeros(2, 2, 100), ValueError, "mono"),
        (torch.zeros(1, 1, 1, 100), torch.zeros(1, 1, 1, 100), ValueError, "4 dims"),
        (torch.zeros(1, 0), torch.zeros(1, 0), ValueError, "empty"),
        (torch.full((1, 10), float("nan")), torch.zeros(1, 10), ValueError, "NaN"),
        (torch.zeros(1, 10, dtype=torch.int16), torch.zeros(1, 10), TypeError, "int16"),
        ([0.0] * 10, torch.zeros(10), TypeError, "list"),
    ],
)
def test_reconstruction_rejects_bad_input(metric, ref, est, error, match):
    with pytest.raises(error, match=match):
        metric(ref, est)


def test_bad_sample_rate():
    with pytest.raises(ValueError, match="-5"):
        mel_distance(torch.zeros(10), torch.zeros(10), sample_rate=-5)


# ------------------------------------------------------------------------------------ Fréchet


def _with_exact_statistics(mean_D: torch.Tensor, cov_DD: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n samples whose sample mean and unbiased covariance are exactly ``mean_D`` and ``cov_DD``."""
    x = _noise(n, mean_D.numel(), seed=seed, dtype=torch.float64)
    x = x - x.mean(0)
    x = x @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(x.T))).T  # whitened: covariance I
    return x @ torch.linalg.cholesky(cov_DD).T + mean_D


def _random_spd(d: int, seed: int) -> torch.Tensor:
    m = _noise(d, d, seed=seed, dtype=torch.float64)
    return m @ m.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def test_frechet_matches_closed_form_on_gaussian_samples():
    d = 6
    mu_a, mu_b = _noise(d, seed=10, dtype=torch.float64), _noise(d, seed=11, dtype=torch.float64)
    cov_a, cov_b = _random_spd(d, 12), _random_spd(d, 13)
    a, b = _with_exact_statistics(mu_a, cov_a, 300, 1), _with_exact_statistics(mu_b, cov_b, 200, 2)
    # Tr((S_a S_b)^(1/2)) from the general (non-symmetric) eigenvalues of the product
    trace_sqrt = torch.linalg.eigvals(cov_a @ cov_b).real.sqrt().sum()
    expected = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    assert frechet_distance(a, b) == pytest.approx(float(expected), rel=1e-9)
    assert frechet_distance(b, a) == pytest.approx(float(expected), rel=1e-9)


def test_frechet_diagonal_gaussians_population_value():
    """Large samples of N(mu, diag(s^2)) approach |mu_a - mu_b|^2 + sum (s_a - s_b)^2."""
    std_a, std_b = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([2.0, 1.0, 0.5])
    a = _noise(40_000, 3, seed=3, dtype=torch.float64) * std_a
    b = _noise(40_000, 3, seed=4, dtype=torch.float64) * std_b + torch.tensor([1.0, 0.0, 0.0])
    assert frechet_distance(a, b) == pytest.approx(1.0 + 1.0 + 1.0, abs=0.05)


def test_frechet_identical_and_shifted():
    a = _noise(50, 16, seed=5)
    assert frechet_distance(a, a) == 0.0
    assert frechet_distance(a, a + 0.5) == pytest.approx(16 * 0.25, rel=1e-6)


@pytest.mark.parametrize(
    "a, b",
    [
        (_noise(5, 64, seed=1), _noise(7, 64, seed=2)),  # fewer samples than dimensions: singular
        (torch.ones(20, 8), _noise(20, 8, seed=3)),  # a constant set: zero covariance
        (_noise(30, 1, seed=1).repeat(1, 10), _noise(30, 10, seed=2)),  # collinear features
        (_noise(30, 10, seed=4) * 1e-8, _noise(30, 10, seed=5) * 1e-8),  # tiny scale
    ],
)
def test_frechet_near_singular_is_finite_and_real(a, b):
    value = frechet_distance(a, b)
    assert isinstance(value, float) and math.isfinite(value) and value >= 0
    assert value == pytest.approx(frechet_distance(b, a), rel=1e-6, abs=1e-20)


def test_frechet_one_dimension():
    a, b = _noise(100, 1, seed=1), 3 * _noise(100, 1, seed=2) + 1
    mu_a, mu_b = a.double().mean(), b.double().mean()
    sd_a, sd_b = a.double().std(), b.double().std()
    assert frechet_distance(a, b) == pytest.approx(float((mu_a - mu_b) ** 2 + (sd_a - sd_b) ** 2), rel=1e-9)


def test_frechet_from_statistics_equals_frechet_distance():
    a, b = _noise(40, 6, seed=6, dtype=torch.float64), 2 * _noise(30, 6, seed=7, dtype=torch.float64) + 1
    value = frechet_distance_from_statistics(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))
    assert value == frechet_distance(a, b) > 0
    with pytest.raises(ValueError, match="NaN or Inf"):
        frechet_distance_from_statistics(a.mean(0) * math.nan, torch.cov(a.T), b.mean(0), torch.cov(b.T))
    with pytest.raises(ValueError, match="means"):
        frechet_distance_from_statistics(a.mean(0), torch.cov(a.T), b.mean(0)[:5], torch.cov(b.T))


def test_fadtk_statistics_merge_files_as_fadtk():
    """fadtk's online merge: the pooled mean and covariance when every file's mean is exact in float16;
    a one-frame file adds a point and no scatter; otherwise the file's mean is rounded to float16."""
    g = torch.Generator().manual_seed(0)
    files = [torch.randint(-8, 8, (n, 5), generator=g).double() for n in (1, 2, 4, 4, 1)]
    mu, cov = fadtk_statistics(files)
    pooled = torch.cat(files)
    torch.testing.assert_close(mu, pooled.mean(0), rtol=0, atol=1e-12)
    torch.testing.assert_close(cov, torch.cov(pooled.T), rtol=0, atol=1e-12)
    assert fadtk_distance(files, files) == 0.0
    # 1 and 1 + 2^-10 are float16 values; their mean 1 + 2^-11 is not, and rounds to 1 (to even)
    mean, scatter, n = fadtk_module.file_statistics(torch.tensor([[1.0], [1 + 2**-10]]))
    assert (float(mean), float(scatter), n) == (1.0, 2 * 2**-22, 2)
    # frames are stored as float16 before anything else: 0.1 is not a float16 value
    assert float(fadtk_statistics([torch.full((2, 1), 0.1)] * 2)[0]) == float(torch.tensor(0.1).half())
    with pytest.raises(ValueError, match="n >= 1"):
        fadtk_statistics([torch.zeros(2, 3), torch.zeros(2, 4)])


@pytest.mark.parametrize(
    "a, b, error, match",
    [
        (torch.zeros(10), torch.zeros(10, 1), ValueError, "1 dims"),
        (torch.zeros(1, 4), torch.zeros(5, 4), ValueError, "at least 2 rows"),
        (torch.zeros(5, 4), torch.zeros(5, 3), ValueError, "4 and 3"),
        (torch.full((5, 4), float("inf")), torch.zeros(5, 4), ValueError, "NaN or Inf"),
        ("embeddings", torch.zeros(5, 4), TypeError, "str"),
    ],
)
def test_frechet_rejects_bad_input(a, b, error, match):
    with pytest.raises(error, match=match):
        frechet_distance(a, b)


# -------------------------------------------------------------------------------- ISc and KL


def test_inception_score_hand_computed():
    # Two clips: p1 = (1, 0), p2 = (0.5, 0.5); marginal (0.75, 0.25).
    # KL(p1 || m) = ln(1 / 0.75); KL(p2 || m) = 0.5 ln(0.5 / 0.75) + 0.5 ln(0.5 / 0.25)
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    kl = [math.log(1 / 0.75), 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)]
    assert inception_score(probs, splits=1) == pytest.approx(math.exp(sum(kl) / 2), rel=1e-12)
    assert inception_score(torch.full((10, 3), 1 / 3)) == pytest.approx(1.0)
    assert inception_score(torch.eye(4).repeat(3, 1), splits=1) == pytest.approx(4.0)
    assert inception_score(probs.numpy(), splits=1) == inception_score(probs, splits=1)  # numpy too
    assert type(inception_score(probs, splits=1)) is float


def test_kl_divergence_hand_computed():
    ref = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    est = torch.tensor([[0.25, 0.75], [0.9, 0.1]])
    first = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert kl_divergence(ref, est, eps=0.0) == pytest.approx(first / 2, rel=1e-12)
    assert kl_divergence(ref, ref, eps=0.0) == 0.0
    # audioldm_eval's eps: 1e-6 added to the estimate only
    with_eps = sum(float((r * (r / (e + 1e-6)).log()).sum()) for r, e in zip(ref.double(), est.double())) / 2
    assert kl_divergence(ref, est) == pytest.approx(with_eps, rel=1e-12)
    assert kl_divergence(est, ref) != pytest.approx(kl_divergence(ref, est))  # not symmetric
    # a zero reference probability adds nothing (0 log 0 = 0); unnormalised rows (sigmoids) are allowed
    assert kl_divergence([[0.0, 1.0]], [[0.5, 0.5]], eps=0.0) == pytest.approx(math.log(2), rel=1e-12)
    assert type(kl_divergence(ref.numpy(), est.numpy())) is float


@pytest.mark.parametrize(
    "probs, match",
    [
        (torch.ones(3), "shaped"),
        (torch.ones(3, 1), "C >= 2"),
        (torch.tensor([[0.5, -0.1]]), r"\[0, 1\]"),
        (torch.zeros(2, 3), "softmax"),
        (torch.full((2, 3), 0.9), "sigmoid outputs"),
    ],
)
def test_probabilities_rejected(probs, match):
    with pytest.raises(ValueError, match=match):
        inception_score(probs, splits=1)


def test_kl_needs_pairs():
    with pytest.raises(ValueError, match="paired"):
        kl_divergence(torch.full((3, 4), 0.25), torch.full((2, 4), 0.25))


# ------------------------------------------------------------------------ optional speech metrics


def _voice(rate: int = 16_000, seconds: float = 2.0) -> torch.Tensor:
    """A speech-like signal: a 140-Hz harmonic series modulated at a syllable rate of 4 Hz."""
    t = torch.arange(int(rate * seconds)) / rate
    voice = sum(torch.sin(2 * math.pi * 140 * k * t) / k for k in range(1, 15))
    voice = voice * (0.5 + 0.5 * torch.sin(2 * math.pi * 4 * t)).square()
    return 0.3 * voice / voice.abs().max()


def test_stoi_from_pystoi():
    pytest.importorskip("pystoi")
    from aar.metrics import stoi

    voice = _voice()
    noisy = voice + 0.05 * _noise(voice.numel())
    assert float(stoi(voice, voice, 16_000)[0]) == pytest.approx(1.0, abs=1e-6)
    assert 0.3 < float(stoi(voice, noisy, 16_000)[0]) < 0.99


def test_pesq_from_pesq_package(caplog):
    pytest.importorskip("pesq")
    from aar.metrics import pesq

    voice = _voice()
    noisy = voice + 0.05 * _noise(voice.numel())
    scores = pesq(torch.stack([voice, voice])[:, None], torch.stack([voice, noisy])[:, None], 16_000)
    assert float(scores[0]) > 4.5 and float(scores[1]) < float(scores[0])
    with caplog.at_level("WARNING", logger="aar.metrics.speech"):
        assert math.isnan(float(pesq(torch.zeros(16_000), torch.zeros(16_000), 16_000)[0]))
    assert "no utterance" in caplog.text


def test_missing_optional_package_is_named(monkeypatch):
    import sys

    import aar.metrics.speech as optional
    from aar.errors import MissingExtraError

    for package in ("pystoi", "pesq"):
        monkeypatch.setitem(sys.modules, package, None)  # a None entry: import and find_spec fail
    assert optional.optional_metrics() == {}
    with pytest.raises(MissingExtraError, match=r"the stoi metric needs the 'pystoi' package.*"
                       + re.escape(pip_command("eval"))):
        optional.stoi(torch.zeros(100), torch.zeros(100), 16_000)
    with pytest.raises(MissingExtraError, match=r"'pesq'") as info:
        optional.pesq(torch.zeros(100), torch.zeros(100), 16_000)
    assert info.value.extra == "eval"


def test_si_snr_is_si_sdr():
    from aar.metrics import si_snr

    ref, est = _noise(2, 1, 1000), _noise(2, 1, 1000, seed=1)
    torch.testing.assert_close(si_snr(ref, est), si_sdr(ref, est))


def test_inception_score_splits():
    """audioldm_eval's split boundaries, [i N // k, (i + 1) N // k), after its shuffle."""
    import numpy as np

    probs = torch.eye(2).repeat_interleave(2, dim=0)  # rows: class 0, class 0, class 1, class 1
    assert inception_score(probs, splits=1) == pytest.approx(2.0)
    assert inception_score(probs, splits=2, seed=None) == pytest.approx(1.0)  # each half holds one class
    assert inception_score(probs, splits=4) == pytest.approx(1.0)  # a single row scores 1
    order = np.random.RandomState(3).permutation(4)
    parts = (order[:2], order[2:])
    expected = np.mean([inception_score(probs[torch.from_numpy(part)], splits=1) for part in parts])
    assert inception_score(probs, splits=2, seed=3) == pytest.approx(expected)
    # 5 rows in 2 parts: rows 0-1 and 2-4 (numpy.array_split would cut 0-2 and 3-4)
    assert inception_score_splits(torch.eye(5), splits=2, seed=None) == pytest.approx([2.0, 3.0])
    for bad in (0, 5, 1.5, True):
        with pytest.raises(ValueError, match="splits"):
            inception_score(probs, splits=bad)
