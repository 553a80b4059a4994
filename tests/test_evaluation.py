"""aar.evaluation: reconstruction scores, folder comparison and the guidance sweep, against the metrics
computed directly on the same audio."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import TINY_SAT, same_scores
from eval_stand_ins import TinyClassifier, TinyExtractor, TinyFramesExtractor, write_eval_folder

from aar import SATTokenizer, metrics
from aar.audio import load_audio, resample, to_mono
from aar.evaluation import compare_sets, evaluate_generation, evaluate_reconstruction
from aar.evaluation.guidance_sweep import generate_rows, plan_jobs
from aar.evaluation.plot import plot_guidance_sweep
from aar.evaluation.round_trip import MIN_TAIL
from aar.evaluation.sets import list_audio
from aar.metrics.fadtk import fadtk_distance
from aar.metrics.protocols import AUDIOLDM_LOADING, FADTK_LOADING, get_protocol

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_eval_folder(tmp_path_factory.mktemp("eval") / "clips")


@pytest.fixture
def tok() -> SATTokenizer:
    torch.manual_seed(0)
    return SATTokenizer(TINY_SAT).eval()


def _direct(tok, path):
    """Per-window scores of one file, computed here from the metrics alone: full windows, then the
    tail on its real samples."""
    wav, rate = load_audio(path)
    ref = resample(to_mono(wav[None]), rate, 24_000)
    est = tok.decode(tok.encode(wav, rate))
    T = ref.shape[-1]
    spans = [(s, min(s + 24_000, T)) for s in range(0, T, 24_000)]
    spans = [(a, b) for a, b in spans if b - a == 24_000 or b - a >= MIN_TAIL]
    scores = {"mel_distance": [], "stft_distance": [], "si_sdr": []}
    for a, b in spans:
        r, e = ref[..., a:b], est[..., a:b]
        scores["mel_distance"].append(float(metrics.mel_distance(r, e)))
        scores["stft_distance"].append(float(metrics.stft_distance(r, e)))
        scores["si_sdr"].append(float(metrics.si_sdr(r, e)))
    return scores, [(ref[..., a:b], est[..., a:b]) for a, b in spans], T


def test_reconstruction_equals_the_metrics_window_by_window(tok, folder):
    extractor = TinyExtractor()
    report = evaluate_reconstruction(tok, folder["speech_16k"].parent, extractor=extractor)
    by_name = {f.path.rsplit("/", 1)[-1]: f for f in report.files}
    assert sorted(by_name) == sorted(p.name for k, p in folder.items() if k not in ("broken", "blip"))
    assert sorted(e.path for e in report.errors) == sorted([str(folder["broken"]), str(folder["blip"])])
    assert "too short" in next(e.error for e in report.errors if e.path == str(folder["blip"]))
    every = {"mel_distance": [], "stft_distance": [], "si_sdr": []}
    emb_ref, emb_est = [], []
    for name, path in folder.items():
        if name in ("broken", "blip"):
            continue
        scores, pairs, T = _direct(tok, path)
        got = by_name[path.name]
        assert got.windows == len(pairs) and got.seconds == pytest.approx(T / 24_000)
        for metric, values in scores.items():
            assert getattr(got, metric) == pytest.approx(np.mean(values), rel=1e-5, abs=1e-5), (name, metric)
            every[metric] += values
        for r, e in pairs:  # the default protocol prepares windows as audioldm_eval prepares files
            emb_ref.append(extractor.embed(AUDIOLDM_LOADING.prepare(r[0], 24_000, 16_000)))
            emb_est.append(extractor.embed(AUDIOLDM_LOADING.prepare(e[0], 24_000, 16_000)))
    for metric, values in every.items():
        assert getattr(report, metric) == pytest.approx(np.mean(values), rel=1e-5, abs=1e-5)
    assert report.windows == len(every["si_sdr"]) == 9
    # about 2.05 s at 24 kHz: two windows and a 1199-sample tail, below MIN_TAIL, left unscored
    assert load_audio(folder["speech_24k"])[0].shape[-1] == 49_199
    assert by_name["speech_24k.wav"].unscored_samples == 1199
    assert by_name["music_44k_stereo.wav"].unscored_samples == 0  # its 0.3-s tail is scored
    fad = metrics.frechet_distance(torch.cat(emb_ref).double(), torch.cat(emb_est).double())
    assert report.fad == pytest.approx(fad, rel=1e-6) and report.fad > 0
    data = json.loads(json.dumps(report.to_dict()))
    assert data["files"][0].keys() >= {"path", "mel_distance", "stft_distance", "si_sdr"}
    assert data["errors"][0].keys() == {"path", "error"}


class _IdentityTokenizer:
    """Reconstructs perfectly: decode(encode(x)) == x at 24 kHz."""

    def __init__(self, tok):
        self.config, self.sample_rate, self.device = tok.config, tok.sample_rate, tok.device

    def fingerprint(self):
        return "identity"

    def encode(self, wav, rate, batch_size=None):
        return resample(to_mono(wav.reshape(1, -1, wav.shape[-1])), rate, 24_000)

    def decode(self, wav, batch_size=None):
        return wav


def test_perfect_reconstruction_scores_zero(tok, folder):
    report = evaluate_reconstruction(_IdentityTokenizer(tok), [folder["speech_24k"], folder["music_22k"]])
    assert report.mel_distance == pytest.approx(0, abs=1e-6)
    assert report.stft_distance == pytest.approx(0, abs=1e-6)
    assert report.si_sdr > 60  # float32 round-off only


def test_fingerprint_covers_every_weight(tok, folder):
    """A fine-tuned decoder keeps the codebooks (codes_fingerprint) but changes the report's fingerprint."""
    import copy

    tuned = copy.deepcopy(tok)
    with torch.no_grad():
        next(tuned.decoder.parameters()).add_(1e-3)
    files = [folder["music_22k"]]
    before, after = evaluate_reconstruction(tok, files), evaluate_reconstruction(tuned, files)
    assert before.codes_fingerprint == after.codes_fingerprint == tok.fingerprint()
    assert before.fingerprint != after.fingerprint
    assert before.fingerprint == metrics.weights_fingerprint(tok)


def test_reconstruction_refuses_bad_arguments(tok, folder):
    with pytest.raises(ValueError, match="min_tail"):
        evaluate_reconstruction(tok, [folder["music_22k"]], min_tail=0)
    with pytest.raises(ValueError, match="no file could be scored"):
        evaluate_reconstruction(tok, [folder["broken"], folder["blip"]])


def test_compare_a_folder_with_itself_and_another(tok, folder, tmp_path):
    classifier = TinyClassifier()
    same = compare_sets(folder["music_22k"].parent, folder["music_22k"].parent, TinyExtractor(),
                        classifier=classifier)
    assert same.fad == pytest.approx(0, abs=1e-9) and same.files_a == same.files_b == 6
    # audioldm_eval adds 1e-6 to the estimate: KL(p || p) = sum p log(p / (p + 1e-6)), just below 0
    assert -1e-5 < same.kl < 0 and same.kl_pairs == 6 and same.kl_sigmoid is None  # no logits here
    assert same.protocol["name"] == "paper" and "audioldm_eval" in same.protocol["tools"]["kl"]
    assert [e.path for e in same.errors] == [str(folder["broken"])] * 4  # embed a, b; classify a, b
    other = tmp_path / "other"
    other.mkdir()
    for name in ("speech_16k", "music_22k"):
        wav, rate = load_audio(folder[name])
        from aar.audio import write_audio

        write_audio(other / folder[name].name, 0.5 * wav.flip(-1), rate)
    report = compare_sets(folder["music_22k"].parent, other, TinyExtractor(), classifier=classifier)
    assert report.fad > 0 and report.kl_pairs == 2
    names = sorted(p.name for p in other.iterdir())
    probs_a = torch.cat([classifier.probs(_at_16k(folder["music_22k"].parent / n)) for n in names])
    probs_b = torch.cat([classifier.probs(_at_16k(other / n)) for n in names])
    assert report.kl == pytest.approx(metrics.kl_divergence(probs_a, probs_b), rel=1e-9)
    no_classifier = compare_sets(other, other, TinyExtractor())
    assert no_classifier.kl is None and "classifier" in no_classifier.kl_unavailable


def test_frame_embeddings_are_pooled_where_the_extractor_has_them(folder, tmp_path):
    """VGGish-style extractors enter FAD with every frame, as the original FAD pools them."""
    extractor = TinyFramesExtractor()
    files = [folder[k] for k in ("speech_16k", "music_22k", "speech_8k")]
    other = tmp_path / "b"
    other.mkdir()
    for f in files[:2]:
        (other / f.name).write_bytes(f.read_bytes())
    (other / "quiet.wav").write_bytes(folder["music_44k_stereo"].read_bytes())
    sub = tmp_path / "a"
    sub.mkdir()
    for f in files:
        (sub / f.name).write_bytes(f.read_bytes())
    report = compare_sets(sub, other, extractor, cache=metrics.EmbeddingCache(tmp_path / "cache"))
    frames_a = torch.cat([extractor.embed_frames(_at_16k(sub / f.name))[0] for f in files]).double()
    frames_b = torch.cat([extractor.embed_frames(_at_16k(p))[0] for p in sorted(other.iterdir())]).double()
    assert frames_a.shape == (6, 8)
    assert report.fad == pytest.approx(metrics.frechet_distance(frames_a, frames_b), rel=1e-5)
    assert report.fad != pytest.approx(compare_sets(sub, other, TinyExtractor()).fad, rel=1e-3)

def test_fadtk_protocol_fits_per_file_and_per_window(tok, folder, tmp_path):
    """Under ``fadtk`` FAD merges float16 statistics per file (compare) or per window (reconstruct,
    where each window is a clip and must give one embedding)."""
    extractor = TinyFramesExtractor()
    other = tmp_path / "b"
    other.mkdir()
    for key in ("speech_16k", "music_22k"):
        (other / folder[key].name).write_bytes(folder[key].read_bytes())
    report = compare_sets(folder["music_22k"].parent, other, extractor, protocol="fadtk")
    files_a = [p for p in list_audio(folder["music_22k"].parent) if p != folder["broken"]]

    def frames(paths):
        return [extractor.embed_frames(FADTK_LOADING.load(p, 16_000))[0].double() for p in paths]

    expected = fadtk_distance(frames(files_a), frames(list_audio(other)))
    assert report.fad == pytest.approx(expected, rel=1e-9) and report.protocol["statistics"] == "fadtk"
    pooled = metrics.frechet_distance(torch.cat(frames(files_a)), torch.cat(frames(list_audio(other))))
    assert report.fad != pytest.approx(pooled, rel=1e-6)

    paths = [folder["music_22k"], folder["speech_24k"]]
    windows = [pair for path in paths for pair in _direct(tok, path)[1]]
    recon = evaluate_reconstruction(tok, paths, extractor=TinyExtractor(), protocol="fadtk")
    per_window = [[TinyExtractor().embed(FADTK_LOADING.prepare(w[0], 24_000, 16_000)).double() for w in pair]
                  for pair in windows]
    expected = fadtk_distance([r for r, _ in per_window], [e for _, e in per_window])
    assert recon.windows == len(windows) and recon.fad == pytest.approx(expected, rel=1e-6)
    two_frames = evaluate_reconstruction(tok, paths, extractor=extractor, protocol="fadtk")
    assert two_frames.fad is None and "one embedding per window" in two_frames.fad_unavailable


def _at_16k(path):
    """A file as the default protocol prepares it for a 16-kHz network (audioldm_eval's loading)."""
    return AUDIOLDM_LOADING.load(path, 16_000)


def test_generation_sweep_scores_each_set(official_generator, folder, tmp_path):
    gen = official_generator
    sources = [folder["speech_16k"], folder["music_22k"]]
    clap = torch.randn(2, 512, generator=torch.Generator().manual_seed(0))
    clap = clap / clap.norm(dim=-1, keepdim=True)
    extractor, classifier = TinyExtractor(), TinyClassifier()
    two_splits = dataclasses.replace(get_protocol("paper"), name="two-splits", isc_splits=2)
    report = evaluate_generation(gen, clap, folder["music_22k"].parent, tmp_path / "gen", extractor,
                                 cfgs=(1.0, 3.0), num_samples=1, seed=7, classifier=classifier,
                                 condition_audio=sources, protocol=two_splits)
    assert [p.cfg for p in report.points] == [1.0, 3.0] and report.reference_files == 6
    assert report.precision == gen.precision == "fp32" and report.to_dict()["precision"] == "fp32"
    assert plan_jobs(2, (1.0,), 2, 7, "x")[3].seed == 10  # condition 1, sample 1: 7 + 1 * 2 + 1
    jobs = plan_jobs(2, (1.0, 3.0), 1, 7, tmp_path / "gen")
    assert [j.seed for j in jobs] == [7, 8, 7, 8]  # the same seeds at every guidance value
    job = jobs[3]  # cfg 3, condition 1
    wav, rate = load_audio(job.path)
    expected = gen.generate(clap[1:2], cfg=3.0, seed=8)
    assert rate == 24_000 and torch.equal(wav, expected[0])  # drawn in a batch, as alone

    ref_files = sorted(p for k, p in folder.items() if k != "broken")
    ref_emb = torch.cat([extractor.embed(_at_16k(p)) for p in ref_files]).double()
    for point in report.points:
        files = [j.path for j in jobs if j.cfg == point.cfg]
        clips = [_at_16k(f) for f in files]
        emb = torch.cat([extractor.embed(c) for c in clips]).double()
        probs = torch.cat([classifier.probs(c) for c in clips]).double()
        assert point.fad == pytest.approx(metrics.frechet_distance(ref_emb, emb), rel=1e-6)
        parts = metrics.inception_score_splits(probs, splits=2, seed=2020)
        assert point.inception_score == pytest.approx(np.mean(parts), rel=1e-6)
        assert point.inception_score_std == pytest.approx(np.std(parts), rel=1e-6, abs=1e-12)
        assert "8 dimensions" in point.fad_warning  # 2 clips against 8-D embeddings
        src = [_at_16k(sources[j.condition]) for j in jobs if j.cfg == point.cfg]
        ref_probs = torch.cat([classifier.probs(s) for s in src]).double()
        assert point.kl == pytest.approx(metrics.kl_divergence(ref_probs, probs), rel=1e-6)
    png = plot_guidance_sweep(report, tmp_path / "sweep.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    unpaired = evaluate_generation(gen, clap, folder["music_22k"].parent, tmp_path / "gen2", extractor,
                                   cfgs=4.0, classifier=classifier)
    assert unpaired.points[0].kl is None and "--clap-from" in unpaired.points[0].kl_unavailable
    assert unpaired.points[0].samples == 2
    # the default protocol's 10 splits need 10 clips
    assert unpaired.points[0].inception_score is None
    assert "needs at least 10 clips, got 2" in unpaired.points[0].isc_unavailable


def test_generated_rows_do_not_depend_on_the_batch_size(official_generator):
    """``generate_rows`` batches runs of one guidance value; every row is its single call's audio."""
    clap = torch.randn(3, 512, generator=torch.Generator().manual_seed(2))
    clap = clap / clap.norm(dim=-1, keepdim=True)
    cfgs, seeds, knobs = [2.0, 2.0, 0.0], [5, 6, 7], dict(top_k=50, top_p=0.9)
    batched = list(generate_rows(official_generator, clap, cfgs, seeds, knobs, batch_size=4))
    assert len(batched) == 3 and all(w.shape == (1, 24000) for w in batched)
    for k in range(3):
        alone = official_generator.generate(clap[k:k + 1], cfg=cfgs[k], seed=seeds[k], **knobs)[0]
        assert torch.equal(batched[k], alone), k


@pytest.mark.slow
def test_generation_on_ray_equals_the_local_run(local_ray, official_generator, folder, tmp_path):
    import eval_stand_ins
    from ray import cloudpickle

    from aar.evaluation.distributed import ray_embedder, ray_runner

    cloudpickle.register_pickle_by_value(eval_stand_ins)  # Ray workers cannot import the tests folder
    # Two threads here, where Ray would start its actors with one: the actors take the driver's
    # count, without which their float sums, and so the audio, differ from the local run's.
    torch.set_num_threads(2)  # the one_thread fixture restores the count

    model = official_generator.save_pretrained(tmp_path / "gen_model")
    clap = torch.randn(2, 512, generator=torch.Generator().manual_seed(1))
    clap = clap / clap.norm(dim=-1, keepdim=True)
    reference = folder["music_22k"].parent
    options = dict(cfgs=(0.0, 2.0), seed=3)
    local = evaluate_generation(official_generator, clap, reference, tmp_path / "local", TinyExtractor(),
                                **options)
    cache = metrics.EmbeddingCache(tmp_path / "cache")  # shared with the workers, who fill it
    remote = evaluate_generation(official_generator, clap, reference, tmp_path / "ray", TinyExtractor(),
                                 runner=ray_runner(model, None, "local", concurrency=2),
                                 embedder=ray_embedder("local", concurrency=1), cache=cache, **options)
    for job in plan_jobs(2, (0.0, 2.0), 1, 3, "."):
        a, _ = load_audio(tmp_path / "local" / job.path)
        b, _ = load_audio(tmp_path / "ray" / job.path)
        assert torch.equal(a, b), job
    assert same_scores([p.fad for p in remote.points], [p.fad for p in local.points])
    assert remote.errors == local.errors and [e.path for e in local.errors] == [str(folder["broken"])]
    # the workers filled the cache: a local run reads it back without embedding, to the same FAD
    counting = TinyExtractor()
    here = compare_sets(reference, tmp_path / "ray" / "cfg_2", counting, cache=cache)
    assert counting.calls == 0 and same_scores(here.fad, remote.points[1].fad)


@pytest.mark.slow
def test_reconstruction_on_ray_equals_the_local_run(local_ray, tok, folder, tmp_path):
    import eval_stand_ins
    from ray import cloudpickle

    from aar.evaluation.distributed import ray_reconstructor

    cloudpickle.register_pickle_by_value(eval_stand_ins)  # Ray workers cannot import the tests folder
    tok.save_pretrained(tmp_path / "tok")
    paths = [folder["speech_24k"], folder["broken"], folder["music_22k"]]
    local = evaluate_reconstruction(tok, paths, extractor=TinyExtractor())
    counting = TinyExtractor()
    remote = evaluate_reconstruction(tok, paths, extractor=counting,
                                     runner=ray_reconstructor(tmp_path / "tok", "local", concurrency=2))
    assert same_scores(remote, local) and counting.calls == 0  # the driver's copy never embedded
    assert [f.path for f in remote.files] == [str(folder["speech_24k"]), str(folder["music_22k"])]
    assert remote.errors == local.errors and [e.path for e in remote.errors] == [str(folder["broken"])]
    assert remote.windows == 3 and remote.fad is not None and remote.fad > 0
    torch.manual_seed(1)  # other weights: the workers' tokenizer is not the one judged, and that is refused
    with pytest.raises(ValueError, match="not the tokenizer given"):
        evaluate_reconstruction(SATTokenizer(TINY_SAT).eval(), paths,
                                runner=ray_reconstructor(tmp_path / "tok", "local", concurrency=1))


def test_progress_bars_count_every_file(folder, capsys):
    """The embedding bar ends at N/N (it stopped one short when the file list led the zip)."""
    from aar.evaluation.sets import embed_files

    paths = [folder["speech_24k"], folder["music_22k"], folder["speech_16k"]]
    embed_files(paths, TinyExtractor(), progress=True, desc="embed")
    assert "3/3" in capsys.readouterr().err
