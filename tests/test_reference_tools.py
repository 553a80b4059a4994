"""aar's metrics against the outputs of the reference tools themselves (tests/fixtures/reference/README.md).

Each fixture holds what a named tool printed on the inputs of ``tests/reference_inputs.py`` (spectral
distances) or on random-weight networks in the published layouts (ISc, KL, FAD); these tests assert
that aar's functions give the same numbers.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from reference_inputs import (
    SPECTRAL_RATES,
    class_logits,
    compare_folders,
    fadtk_folders,
    random_panns_state,
    random_vggish_state,
    reconstruct_inputs,
    resampler_probe,
    spectral_pairs,
)

from aar.cli import main
from aar.evaluation import compare_sets
from aar.metrics import (
    PANNsCNN14,
    VGGish,
    inception_score,
    inception_score_splits,
    kl_divergence,
    mel_distance,
    stft_distance,
)
from aar.metrics.fadtk import fadtk_statistics
from aar.metrics.kaiser_resample import kaiser_resample
from aar.metrics.protocols import AUDIOLDM_LOADING, FADTK_LOADING, TORCHVGGISH_LOADING, get_protocol

FIXTURES = Path(__file__).parent / "fixtures" / "reference"


def _load(name: str):
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize("sample_rate", SPECTRAL_RATES)
@pytest.mark.parametrize("name, metric", [
    ("official", lambda r, e, sr: mel_distance(r, e, sr, definition="official")),
    ("dac", lambda r, e, sr: mel_distance(r, e, sr, definition="dac")),
    ("auraloss", lambda r, e, sr: stft_distance(r, e, sr, definition="auraloss")),
])
def test_spectral_distances_equal_the_reference_tools(name, metric, sample_rate):
    """official: losses.py l_f of the official repository; dac: MelSpectrogramLoss as conf/final/24khz.yml
    sets it; auraloss: MultiResolutionSTFTLoss() (estimate as input, reference as target)."""
    expected = torch.tensor(_load("spectral.json")[str(sample_rate)][name], dtype=torch.float64)
    ref, est = spectral_pairs(sample_rate)
    got = metric(ref, est, sample_rate).double()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=0)


@pytest.mark.parametrize("n", ["12", "37"])
def test_isc_and_kl_equal_audioldm_eval(n):
    """audioldm_eval's calculate_isc (softmax, 10 splits after a shuffle with seed 2020) and calculate_kl
    (softmax and sigmoid forms, eps 1e-6) on the same logits."""
    expected = _load("isc_kl.json")[n]
    gen = torch.from_numpy(class_logits(int(n), seed=1)).double()
    ref = torch.from_numpy(class_logits(int(n), seed=2)).double()
    parts = inception_score_splits(gen.softmax(-1))
    assert inception_score(gen.softmax(-1)) == pytest.approx(expected["inception_score_mean"], rel=1e-6)
    assert float(np.std(parts)) == pytest.approx(expected["inception_score_std"], rel=1e-5, abs=1e-12)
    assert kl_divergence(ref.softmax(-1), gen.softmax(-1)) == pytest.approx(
        expected["kullback_leibler_divergence_softmax"], rel=1e-5)
    assert kl_divergence(ref.sigmoid(), gen.sigmoid()) == pytest.approx(
        expected["kullback_leibler_divergence_sigmoid"], rel=1e-5)


# ------------------------------------------------- aar eval compare against audioldm_eval, end to end


@pytest.fixture(scope="module")
def compare_work(tmp_path_factory):
    """The folders and the random-weight checkpoints (published layouts) the fixture was made with."""
    root = tmp_path_factory.mktemp("reference-compare")
    compare_folders(root)
    weights = {"panns16": root / "Cnn14_16k_mAP=0.438.pth", "panns32": root / "Cnn14_mAP=0.431.pth",
               "vggish": root / "vggish-10086976.pth"}
    torch.save({"model": random_panns_state(16_000)}, weights["panns16"])
    torch.save({"model": random_panns_state(32_000)}, weights["panns32"])
    torch.save(random_vggish_state(), weights["vggish"])
    return root, weights


@pytest.mark.usefixtures("one_thread")
def test_compare_cli_equals_audioldm_eval(compare_work, tmp_path):
    """``aar eval compare A B --protocol audioldm`` with CNN14 at 16 kHz and VGGish: KL (softmax and
    sigmoid) and FAD as audioldm_eval prints them on the same files and weights."""
    root, weights = compare_work
    expected = _load("compare.json")
    out = tmp_path / "report.json"
    rc = main(["eval", "compare", str(root / "a"), str(root / "b"),
               "--extractor", f"vggish:{weights['vggish']}",
               "--classifier", f"panns:{weights['panns16']}", "--protocol", "audioldm", "--no-cache", "-q",
               "--json", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    kl = expected["kl_16000"]
    assert report["kl"] == pytest.approx(kl["kullback_leibler_divergence_softmax"], rel=1e-3)
    assert report["kl_sigmoid"] == pytest.approx(kl["kullback_leibler_divergence_sigmoid"], rel=1e-3)
    assert report["kl_pairs"] == 3 and report["classifier"] == "panns-cnn14-16k"
    assert report["fad"] == pytest.approx(expected["fad"], rel=1e-5)
    assert "audioldm_eval" in report["protocol"]["tools"]["fad"] and report["fad_warning"]


def test_panns_32k_and_vggish_equal_the_reference_networks(compare_work):
    """CNN14 at 32 kHz (audioldm_eval --sampling_rate 32000) and torchvggish without its last ReLU, on
    the first clip as audioldm_eval loads it."""
    root, weights = compare_work
    expected = _load("compare.json")
    clip = root / "a" / "clip_0.wav"
    cnn14 = PANNsCNN14.from_pretrained(weights["panns32"])
    logits = cnn14.logits(AUDIOLDM_LOADING.load(clip, 32_000))[0].double()
    torch.testing.assert_close(logits, torch.tensor(expected["logits_32000_a0"], dtype=torch.float64),
                               rtol=1e-4, atol=1e-4)
    vggish = VGGish.from_pretrained(weights["vggish"])
    frame = vggish.embed_frames(AUDIOLDM_LOADING.load(clip, 16_000))[0, 0].double()
    torch.testing.assert_close(frame, torch.tensor(expected["vggish_a0"], dtype=torch.float64),
                               rtol=1e-4, atol=1e-4)


# ---------------------------------------- aar eval reconstruct against the reference tools, end to end


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("protocol, mel", [("paper", "official"), ("dac", "dac")])
def test_reconstruct_cli_equals_the_reference_tools(protocol, mel, tmp_path):
    """``aar eval reconstruct --protocol P``: each file's mel and STFT distances are the reference tools'
    values on the same windows (the official repository's or DAC's mel loss, auraloss's MR-STFT)."""
    files, tiny = reconstruct_inputs(tmp_path)
    out = tmp_path / "report.json"
    assert main(["eval", "reconstruct", str(tmp_path / "clips"), "--model", str(tiny), "--protocol", protocol,
                 "-q", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    expected = _load("reconstruct.json")
    assert [Path(f["path"]).name for f in report["files"]] == ["one.wav", "tail.wav"]
    for row in report["files"]:
        values = expected[Path(row["path"]).name]
        assert row["mel_distance"] == pytest.approx(values[mel], rel=1e-3)
        assert row["stft_distance"] == pytest.approx(values["auraloss"], rel=1e-3)
    assert report["protocol"]["name"] == protocol and report["protocol"]["mel"] == mel


# ------------------------------ resampy's kaiser_best and torchvggish's FAD (protocol torchvggish)


@pytest.mark.parametrize("sample_rate", [22_050, 24_000, 44_100, 8_000])
def test_kaiser_resample_equals_resampy(sample_rate):
    """``kaiser_resample`` against ``resampy.resample(x, sr, 16000)`` (kaiser_best) at 200 points."""
    expected = _load("torchvggish.json")["resampy"][str(sample_rate)]
    out = kaiser_resample(torch.from_numpy(resampler_probe(sample_rate)), sample_rate, 16_000)
    assert out.shape == (expected["length"],) and out.dtype == torch.float32
    values = torch.tensor(expected["values"], dtype=torch.float64)
    torch.testing.assert_close(out[expected["index"]].double(), values, rtol=0, atol=1e-6)


@pytest.mark.usefixtures("one_thread")
def test_compare_cli_equals_torchvggish_fad(compare_work, tmp_path):
    """``aar eval compare --protocol torchvggish``: FAD on torchvggish's own embeddings (resampy to
    16 kHz, channels averaged), the Fréchet distance as pytorch-fid computes it."""
    root, weights = compare_work
    expected = _load("torchvggish.json")
    out = tmp_path / "report.json"
    assert main(["eval", "compare", str(root / "a"), str(root / "b"),
                 "--extractor", f"vggish:{weights['vggish']}", "--protocol", "torchvggish",
                 "--no-cache", "-q", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["fad"] == pytest.approx(expected["fad"], rel=1e-5)
    assert "resampy" in report["protocol"]["resampler"]
    frame = VGGish.from_pretrained(weights["vggish"]).embed_frames(
        TORCHVGGISH_LOADING.load(root / "a" / "clip_0.wav", 16_000))[0, 0].double()
    torch.testing.assert_close(frame, torch.tensor(expected["frame_a0"], dtype=torch.float64),
                               rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ fadtk's FAD (protocol fadtk)


@pytest.fixture(scope="module")
def fadtk_work(compare_work, tmp_path_factory):
    """The folders of ``fadtk_folders`` (24 and 44.1 kHz) and the random VGGish weights."""
    root = tmp_path_factory.mktemp("reference-fadtk")
    fadtk_folders(root)
    return root, compare_work[1]["vggish"]


def test_fadtk_loading_equals_fadtk_conversion(fadtk_work):
    """``FADTK_LOADING`` gives the 16-bit samples fadtk's ``load_audio`` writes (its Kaiser resampling
    and 16-bit write), at 50 points and in the sums of every sample, then pads to 1 s."""
    root, _ = fadtk_work
    for side, files in _load("fadtk.json")["pcm16"].items():
        for name, expected in files.items():
            pcm = (FADTK_LOADING.load(root / side / name, 16_000)[0, 0] * 32768).round().long()
            n = expected["length"]
            assert pcm.shape == (max(n, 16_000),) and not pcm[n:].any()
            assert pcm[expected["index"]].tolist() == expected["values"], (side, name)
            assert (int(pcm.sum()), int(pcm.abs().sum())) == (expected["sum"], expected["abs_sum"])


def _fadtk_fad(root, weights, tmp_path, protocol="fadtk"):
    out = tmp_path / "report.json"
    assert main(["eval", "compare", str(root / "a"), str(root / "b"), "--extractor", f"vggish:{weights}",
                 "--protocol", protocol, "--no-cache", "-q", "--json", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.mark.usefixtures("one_thread")
def test_compare_cli_equals_fadtk(fadtk_work, tmp_path):
    """``aar eval compare A B --protocol fadtk`` (24 kHz against 44.1 kHz, a stereo, a clipped and two
    sub-second files) prints fadtk's FAD on the same files and weights. Tolerance 1e-6 relative:
    the statistics equal fadtk's to 1e-15 and the distance differs only in how the rank-deficient
    covariances' zero eigenvalues round (7e-8); leaving out any one of fadtk's steps moves it by 2.7e-5
    or more (``test_fadtk_fixture_tells_the_steps_apart``)."""
    root, weights = fadtk_work
    expected = _load("fadtk.json")
    report = _fadtk_fad(root, weights, tmp_path)
    assert report["fad"] == pytest.approx(expected["fad"], rel=1e-6)
    assert report["files_a"] == report["files_b"] == 4
    assert "fadtk" in report["protocol"]["tools"]["fad"] and "kaiser" in report["protocol"]["resampler"]
    vggish = VGGish.from_pretrained(weights)
    for side in "ab":
        names = sorted(expected["frames"][side])
        frames = [vggish.embed_frames(FADTK_LOADING.load(root / side / name, 16_000))[0] for name in names]
        assert [len(f) for f in frames] == [expected["frames"][side][name] for name in names]
        mu, cov = fadtk_statistics(frames)
        expected_mu = torch.tensor(expected["mu"][side], dtype=torch.float64)
        torch.testing.assert_close(mu, expected_mu, rtol=0, atol=1e-9)
        assert float(cov.trace()) == pytest.approx(expected["trace_cov"][side], rel=1e-9)
    # fadtk stores the frames as float16: the first of b/clip_0.wav
    expected_frame = torch.tensor(expected["frame_b0"], dtype=torch.float64)
    torch.testing.assert_close(frames[0][0].half().double(), expected_frame, rtol=1e-3, atol=0)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("change, smallest", [
    (dict(loading=dataclasses.replace(FADTK_LOADING, resampler="torchaudio")), 1e-3),
    (dict(loading=dataclasses.replace(FADTK_LOADING, pcm16=False)), 1e-4),
    (dict(statistics="pooled"), 1e-5),
])
def test_fadtk_fixture_tells_the_steps_apart(fadtk_work, change, smallest):
    """Without fadtk's resampler, its 16-bit round trip, or its float16 per-file statistics the FAD
    misses the fixture by far more than the tolerance above: the test can fail."""
    root, weights = fadtk_work
    protocol = dataclasses.replace(get_protocol("fadtk"), **change)
    report = compare_sets(root / "a", root / "b", VGGish.from_pretrained(weights), protocol=protocol)
    assert abs(report.fad / _load("fadtk.json")["fad"] - 1) > smallest
