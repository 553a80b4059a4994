"""Threads: concurrent generation and tokenization give the sequential results; no KV cache is shared."""

import threading

import torch
from conftest import TINY_SAT, tiny_generator

from aar import SATTokenizer

ROUNDS = 2  # each thread repeats its job, so the calls of the two threads interleave


def clap(batch: int, seed: int) -> torch.Tensor:
    v = torch.randn(batch, 512, generator=torch.Generator().manual_seed(seed))
    return v / v.norm(dim=1, keepdim=True)


def run_together(*jobs) -> list[list]:
    """Run each job ROUNDS times in its own thread, all starting at once; results per job."""
    start = threading.Barrier(len(jobs))
    results: list[list] = [[] for _ in jobs]
    errors: list[BaseException] = []

    def worker(i, job):
        try:
            start.wait()
            for _ in range(ROUNDS):
                results[i].append(job())
        except BaseException as err:  # re-raised in the main thread below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


def test_two_generators_in_threads_match_sequential_runs():
    gen_a, gen_b = tiny_generator(0, peaky=True), tiny_generator(1, peaky=True)
    clap_a, clap_b = clap(2, 10), clap(3, 11)
    expected_a = gen_a.generate_codes(clap_a, seed=5)
    expected_b = gen_b.generate_codes(clap_b, seed=6, top_k=None, top_p=None)
    runs_a, runs_b = run_together(
        lambda: gen_a.generate_codes(clap_a, seed=5),
        lambda: gen_b.generate_codes(clap_b, seed=6, top_k=None, top_p=None),
    )
    assert all(r.equal(expected_a) for r in runs_a)
    assert all(r.equal(expected_b) for r in runs_b)


def test_one_generator_shared_by_threads_with_their_own_generators():
    gen = tiny_generator(2, peaky=True)
    conditions = clap(1, 20), clap(3, 21)
    expected = [gen.generate_codes(c, generator=torch.Generator().manual_seed(s), cfg=2.0)
                for c, s in zip(conditions, (7, 8))]
    expected_audio = gen.tokenizer.decode(expected[0])
    expected_ll = gen.log_likelihood(expected[1], conditions[1])
    runs = run_together(
        lambda: gen.generate_codes(conditions[0], generator=torch.Generator().manual_seed(7), cfg=2.0),
        lambda: gen.generate_codes(conditions[1], generator=torch.Generator().manual_seed(8), cfg=2.0),
        lambda: gen.tokenizer.decode(expected[0]),
        lambda: gen.log_likelihood(expected[1], conditions[1]),
    )
    assert all(r.equal(expected[0]) for r in runs[0])
    assert all(r.equal(expected[1]) for r in runs[1])
    assert all(torch.equal(r, expected_audio) for r in runs[2])
    assert all(torch.equal(r, expected_ll) for r in runs[3])


def test_every_call_gets_its_own_kv_cache_and_leaves_it_empty(monkeypatch):
    gen = tiny_generator(3, peaky=True)
    caches, lock = [], threading.Lock()
    make_cache = gen.transformer.kv_cache

    def recording_kv_cache():
        cache = make_cache()
        with lock:
            caches.append(cache)
        return cache

    monkeypatch.setattr(gen.transformer, "kv_cache", recording_kv_cache)
    conditions = clap(1, 30), clap(2, 31)
    expected = [gen.generate_codes(c, seed=s) for c, s in zip(conditions, (1, 2))]
    caches.clear()
    runs = run_together(lambda: gen.generate_codes(conditions[0], seed=1),
                        lambda: gen.generate_codes(conditions[1], seed=2))
    assert len(caches) == 2 * ROUNDS and len({id(c) for c in caches}) == 2 * ROUNDS
    assert all(c.num_scales == 0 and c.num_tokens == 0 for c in caches)
    for job, want in zip(runs, expected):
        assert all(r.equal(want) for r in job)


def test_tokenizer_shared_by_threads_matches_sequential_runs():
    torch.manual_seed(4)
    tok = SATTokenizer(TINY_SAT).eval()
    g = torch.Generator().manual_seed(0)
    wav_a = 0.2 * torch.randn(2, 1, 30_000, generator=g)
    wav_b = 0.2 * torch.randn(1, 2, 16_000, generator=g)
    codes_a, codes_b = tok.encode(wav_a, 24000), tok.encode(wav_b, 16_000)
    audio_a = tok.decode(codes_a)
    runs = run_together(lambda: tok.encode(wav_a, 24000), lambda: tok.encode(wav_b, 16_000),
                        lambda: tok.decode(codes_a))
    assert all(r.equal(codes_a) for r in runs[0])
    assert all(r.equal(codes_b) for r in runs[1])
    assert all(torch.equal(r, audio_a) for r in runs[2])
