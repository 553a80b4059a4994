"""The ``aar demo`` page driven through its API with ``gradio_client`` on the fixture model.

Each tab is checked against the library call it stands for: the same seed gives the same audio, the
downloads load back, bad inputs come back as errors and the next request is answered.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")
httpx = pytest.importorskip("httpx")  # comes with gradio

from demo_server import running_demo  # noqa: E402

from aar import load_audio  # noqa: E402
from aar.demo.engine import CONDITIONS  # noqa: E402
from aar.demo.handlers import EDIT_MODES  # noqa: E402
from aar.loading.codes_file import load_codes  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
NONE = CONDITIONS[0]
KNOBS = dict(cfg=4.0, top_k=200, top_p=0.95, temperature=1.0)
MAX_SAMPLES = 2


LOCAL = ("127.0.0.1", "localhost", "::1")
OUTSIDE: list = []  # every connection or name lookup, by anyone in this process, to another host


@pytest.fixture(scope="module", autouse=True)
def watch_the_network():
    """Record connections and lookups of hosts other than this machine while the module runs."""
    import socket

    connect, lookup = socket.socket.connect, socket.getaddrinfo

    def watched_connect(self, address):
        if isinstance(address, tuple) and address[0] not in LOCAL:
            OUTSIDE.append(address)
        return connect(self, address)

    def watched_lookup(host, *args, **kwargs):
        if host not in LOCAL and host is not None:
            OUTSIDE.append(host)
        return lookup(host, *args, **kwargs)

    socket.socket.connect, socket.getaddrinfo = watched_connect, watched_lookup
    yield
    socket.socket.connect, socket.getaddrinfo = connect, lookup


@pytest.fixture(scope="module")
def demo(tmp_path_factory, watch_the_network):
    folder = tmp_path_factory.mktemp("demo")
    limits = dict(max_samples=MAX_SAMPLES, max_clip_seconds=3.0, max_seconds=3.0, max_upload_mb=1.0)
    with running_demo(folder, **limits) as (url, engine):
        # The server shares this machine: the client reads result paths, and downloads what a user would.
        client = gradio_client.Client(url, verbose=False, analytics_enabled=False, download_files=False)
        yield client, engine, folder


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    """1.5 s of a chirp at 16 kHz, stereo: another rate and layout than the model's."""
    t = np.arange(24000) / 16000
    mono = 0.3 * np.sin(2 * np.pi * (200 + 400 * t) * t)
    path = tmp_path_factory.mktemp("clips") / "chirp.wav"
    sf.write(path, np.stack([mono, 0.5 * mono], axis=1).astype(np.float32), 16000)
    return path


def _generate(client, seed=3, seconds=1.0, samples=1, top_p=0.95):
    return client.submit(NONE, "", None, None, KNOBS["cfg"], KNOBS["top_k"], top_p, KNOBS["temperature"],
                         seed, seconds, samples, api_name="/generate")


def _scales(outputs) -> list[tuple[int, int]]:
    """(window, scale) of every preview status, in the order they arrived."""
    found = []
    for out in outputs:
        m = re.search(r"(?:window (\d+)/\d+, )?scale (\d+)/16", out[0])
        if m:
            found.append((int(m.group(1) or 1), int(m.group(2))))
    return found


def _finals(outputs):
    """The last update: status, the paths of the visible players, the download links."""
    status, *_, files = outputs[-1]
    players = [p["value"]["path"] for p in outputs[-1][4:4 + MAX_SAMPLES] if p.get("visible")]
    return status, players, files


def _download(link: dict, folder: Path) -> Path:
    """Fetch a download the way the page's link does."""
    path = folder / link["orig_name"]
    response = httpx.get(link["url"], timeout=30)
    response.raise_for_status()
    path.write_bytes(response.content)
    return path


def test_generate_streams_sixteen_previews_then_the_library_audio(demo, tmp_path):
    client, engine, _ = demo
    job = _generate(client, seed=3)
    job.result(timeout=120)
    outputs = job.outputs()
    assert _scales(outputs) == [(1, i) for i in range(1, 17)]  # coarse to fine, one each
    assert len(outputs[-2][3]) == 16  # the ladder of spectrograms
    status, players, files = _finals(outputs)
    assert status.startswith("done") and "precision fp32" in status
    wav, rate = load_audio(players[0])
    expected = engine.gen.generate(engine.gen.transformer.uncond_clap(1), seed=3, **KNOBS)[0]
    assert rate == 24000 and wav.shape == (1, 24000)
    torch.testing.assert_close(wav, expected, rtol=0, atol=0)
    by_suffix = {link["orig_name"].rsplit(".", 1)[-1]: _download(link, tmp_path) for link in files}
    assert set(by_suffix) == {"wav", "flac", "codes"}
    flac, _ = load_audio(by_suffix["flac"])
    torch.testing.assert_close(flac, expected, rtol=0, atol=2 ** -15)  # 16-bit
    codes = load_codes(by_suffix["codes"], engine.gen.tokenizer)
    torch.testing.assert_close(engine.gen.tokenizer.decode(codes)[0], expected, rtol=0, atol=0)
    last_preview, _ = load_audio(outputs[-2][1]["path"])  # the preview from all 16 scales is the final audio
    torch.testing.assert_close(last_preview, expected, rtol=0, atol=0)


def test_generate_seconds_and_samples_are_the_library_calls_seed_by_seed(demo):
    client, engine, _ = demo
    job = _generate(client, seed=7, seconds=1.5, samples=2)
    job.result(timeout=120)
    outputs = job.outputs()
    assert _scales(outputs) == [(w, i) for _ in range(2) for w in (1, 2) for i in range(1, 17)]
    _, players, files = _finals(outputs)
    assert not any(link["orig_name"].endswith(".codes") for link in files)  # a codes file is one window
    for j, player in enumerate(players):
        wav, _ = load_audio(player)
        uncond = engine.gen.transformer.uncond_clap(1)
        expected = engine.gen.generate(uncond, seconds=1.5, seed=7 + j, **KNOBS)
        assert wav.shape == (1, 36000)
        torch.testing.assert_close(wav, expected[0], rtol=0, atol=0)


def test_bad_inputs_give_messages_and_the_next_request_is_answered(demo, tmp_path, clip_path):
    client, _, folder = demo
    handle = gradio_client.handle_file
    with pytest.raises(gradio_client.exceptions.AppError, match=r"top_p must .* lie in \(0, 1\], got 2.0"):
        _generate(client, top_p=2.0).result(timeout=60)
    with pytest.raises(gradio_client.exceptions.AppError, match=r"seconds must lie in \(0, 3\]"):
        _generate(client, seconds=4.0).result(timeout=60)
    with pytest.raises(gradio_client.exceptions.AppError, match="greater than maximum value 2"):
        _generate(client, samples=3).result(timeout=60)
    with pytest.raises(gradio_client.exceptions.AppError, match="upload a CLAP vector"):
        client.predict(CONDITIONS[1], "", None, None, 4.0, 200, 0.95, 1.0, 0, 1.0, 1, api_name="/generate")
    bad_vector = tmp_path / "bad.npy"
    np.save(bad_vector, np.zeros(7, np.float32))
    with pytest.raises(gradio_client.exceptions.AppError, match=r"shaped \(512,\) or \(1, 512\), got \(7,\)"):
        client.predict(CONDITIONS[1], "", None, handle(str(bad_vector)), 4.0, 200, 0.95, 1.0, 0, 1.0, 1,
                       api_name="/generate")
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    with pytest.raises(gradio_client.exceptions.AppError, match="not an audio file"):
        client.predict(handle(str(text)), 4, NONE, "", None, 4.0, 200, 0.95, 1.0, 0, 1, api_name="/vary")
    long_clip = tmp_path / "long.wav"
    sf.write(long_clip, np.zeros(8000 * 4, np.float32), 8000)
    with pytest.raises(gradio_client.exceptions.AppError, match=r"lasts 4.0 s; the limit is 3 s"):
        client.predict(str(long_clip) and handle(str(long_clip)), 16, api_name="/tokenize")
    with pytest.raises(gradio_client.exceptions.AppError, match=r"range must be shorter than one window"):
        client.predict(handle(str(clip_path)), EDIT_MODES[0], 0.0, 1.2, 1.0, NONE, "", None, 4.0, 200, 0.95,
                       1.0, 0, api_name="/edit")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), 8000)
    with pytest.raises(gradio_client.exceptions.AppError, match="holds no samples"):
        client.predict(handle(str(empty)), 16, api_name="/tokenize")
    big = tmp_path / "big.wav"
    sf.write(big, np.zeros(300_000, np.float32), 100_000, subtype="FLOAT")  # 1.2 MB: over the 1 MB limit
    with pytest.raises(Exception, match=r"(?i)file size|too large|exceeds|maximum"):
        client.predict(handle(str(big)), 16, api_name="/tokenize")
    job = _generate(client, seed=0)  # still serving
    job.result(timeout=120)
    assert _finals(job.outputs())[0].startswith("done")
    assert Path(_finals(job.outputs())[1][0]).resolve().is_relative_to(folder.resolve())


def test_variations_keep_the_coarse_scales(demo, clip_path):
    client, engine, _ = demo
    handle = gradio_client.handle_file(str(clip_path))
    outputs = client.submit(handle, 16, NONE, "", None, 4.0, 200, 0.95, 1.0, 5, 2, api_name="/vary")
    outputs.result(timeout=120)
    _, players, _ = _finals(outputs.outputs())
    clip, rate = load_audio(clip_path)
    wav_1T = engine.mono((clip, rate))
    reconstruction = engine.gen.tokenizer.decode(engine.gen.tokenizer.encode(wav_1T, engine.sample_rate))[0]
    for player in players:  # all 16 scales kept: the clip through the tokenizer, whatever the seed
        wav, _ = load_audio(player)
        torch.testing.assert_close(wav, reconstruction, rtol=0, atol=1e-6)
    job = client.submit(handle, 4, NONE, "", None, 4.0, 200, 0.95, 1.0, 5, 1, api_name="/vary")
    job.result(timeout=120)
    wav, _ = load_audio(_finals(job.outputs())[1][0])
    expected = engine.gen.vary(wav_1T, 24000, keep_scales=4, clap_emb=engine.gen.transformer.uncond_clap(1),
                               seed=5, **KNOBS)[0]
    assert wav.shape == (1, 36000)
    torch.testing.assert_close(wav, expected, rtol=0, atol=1e-6)


def test_inpaint_changes_only_the_range_and_continue_keeps_the_clip(demo, clip_path):
    client, engine, _ = demo
    handle = gradio_client.handle_file(str(clip_path))
    clip, rate = load_audio(clip_path)
    original = engine.mono((clip, rate))
    job = client.submit(handle, EDIT_MODES[0], 0.9, 1.2, 1.0, NONE, "", None, 4.0, 200, 0.95, 1.0, 2,
                        api_name="/edit")
    job.result(timeout=120)
    wav, _ = load_audio(_finals(job.outputs())[1][0])
    assert wav.shape == original.shape == (1, 36000)
    fade = round(0.02 * 24000)
    torch.testing.assert_close(wav[:, :21600 - fade], original[:, :21600 - fade], rtol=0, atol=1e-6)
    torch.testing.assert_close(wav[:, 28800 + fade:], original[:, 28800 + fade:], rtol=0, atol=1e-6)
    assert not torch.allclose(wav[:, 21600:28800], original[:, 21600:28800], atol=1e-3)
    job = client.submit(handle, EDIT_MODES[1], 0.0, 0.5, 0.9, NONE, "", None, 4.0, 200, 0.95, 1.0, 2,
                        api_name="/edit")
    job.result(timeout=120)
    outputs = job.outputs()
    assert _scales(outputs) == [(w, i) for w in (1, 2) for i in range(1, 17)]  # 0.9 s: two hops of 0.5 s
    wav, _ = load_audio(_finals(outputs)[1][0])
    assert wav.shape == (1, 36000 + round(0.9 * 24000))
    keep = 36000 - round(0.05 * 24000)  # all but the crossfade into the continuation
    torch.testing.assert_close(wav[:, :keep], original[:, :keep], rtol=0, atol=1e-6)


def test_tokenizer_tab_shows_codes_and_the_coarse_to_fine_ladder(demo, clip_path):
    client, engine, _ = demo
    picture, decoded, codes_path = client.predict(gradio_client.handle_file(str(clip_path)), 3,
                                                  api_name="/tokenize")
    clip, rate = load_audio(clip_path)
    tok = engine.gen.tokenizer
    expected_codes = tok.encode(engine.mono((clip, rate)), engine.sample_rate)
    codes = load_codes(codes_path["path"], tok)
    assert Path(codes_path["path"]).resolve().is_relative_to(demo[2].resolve())  # the app's folder
    assert codes.equal(expected_codes)
    wav, _ = load_audio(decoded["path"])
    torch.testing.assert_close(wav, tok.decode(expected_codes, num_scales=3)[0], rtol=0, atol=1e-6)
    from PIL import Image

    assert Image.open(picture["path"]).size == (2 * 300, 16 * 12)  # two windows wide, one band per scale


def test_stop_cancels_a_running_job_and_the_next_request_runs(demo):
    client, engine, _ = demo
    gen, windows = engine.gen, []
    original = gen.generate_codes

    def slowed(*args, callback, **kwargs):  # 0.1 s per scale: a window lasts longer than a cancel takes
        windows.append(1)
        return original(*args, callback=lambda p: time.sleep(0.1) or callback(p), **kwargs)

    gen.generate_codes = slowed
    try:
        job = _generate(client, seed=1, seconds=3.0)  # three windows, one generate_codes call each
        for out in job:
            if "scale 2/16" in out[0]:
                break
        assert job.cancel()  # the request the page's Stop button sends too
        deadline = time.monotonic() + 60
        while not engine._lock.acquire(blocking=False):  # the worker lets go at its next scale
            assert time.monotonic() < deadline, "the cancelled job kept the model"
            time.sleep(0.05)
        engine._lock.release()
    finally:
        del gen.generate_codes
    assert len(windows) == 1  # stopped inside the first window: the other two never started
    after = _generate(client, seed=0)
    after.result(timeout=120)
    assert _finals(after.outputs())[0].startswith("done")


def test_the_ladder_slider_decodes_the_tokenized_clip(demo, clip_path):
    """The slider's handler (its codes live in the page's session state, which the API does not expose)."""
    import gradio as gr

    from aar.demo.handlers import Handlers

    _, engine, folder = demo
    handlers = Handlers(engine, folder)
    clip, rate = load_audio(clip_path)
    codes = engine.tokenize((clip, rate))
    wav, _ = load_audio(handlers.ladder(codes, 5))
    torch.testing.assert_close(wav, engine.gen.tokenizer.decode(codes, num_scales=5)[0], rtol=0, atol=1e-6)
    with pytest.raises(gr.Error, match="tokenize a clip first"):
        handlers.ladder(None, 3)
    with pytest.raises(gr.Error, match=r"scales to decode must lie in \[1, 16\], got 17"):
        handlers.ladder(codes, 17)


def test_neither_the_server_nor_its_clients_reached_another_host():
    """Runs last in this module: launching the server and every request above stayed on this machine."""
    assert OUTSIDE == []
