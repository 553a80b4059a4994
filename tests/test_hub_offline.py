"""A Hub id while the Hub cannot be reached: one line within seconds, or the cached copy.

The Hub address points at a local port that nothing listens on, with offline mode off, so the test
never leaves the machine.
"""

import socket
import time

import pytest
import torch
from official_layout import populate_hub_cache

from aar import AARGenerator, SATTokenizer
from aar.cli import main
from aar.errors import HubUnreachableError
from aar.loading import hub

#: Generous: the point is seconds instead of huggingface_hub's ~25 s of retries.
LIMIT_S = 10.0


@pytest.fixture
def unreachable_hub(monkeypatch):
    """Offline mode off, and the Hub endpoint a closed local port; returns the endpoint."""
    import huggingface_hub.constants as constants

    with socket.socket() as sock:  # a port that was free a moment ago, now closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(hub, "_probes", {})
    return endpoint


def test_uncached_model_fails_in_one_line_within_seconds(unreachable_hub, tmp_path, capfd):
    start = time.monotonic()
    with pytest.raises(HubUnreachableError) as info:
        SATTokenizer.from_pretrained("someone/model", cache_dir=tmp_path / "cache")
    elapsed = time.monotonic() - start
    err = info.value
    message = str(err)
    assert elapsed < LIMIT_S, elapsed
    assert "\n" not in message
    assert unreachable_hub in message and "someone/model" in message and "config.json" in message
    assert "HF_HUB_OFFLINE=1" in message and "local path" in message
    assert (err.repo_id, err.path_in_repo, err.endpoint) == ("someone/model", "config.json", unreachable_hub)
    assert isinstance(err, ConnectionError) and isinstance(err, OSError)
    assert "Retrying" not in capfd.readouterr().err  # huggingface_hub never got to retry


def test_official_release_uncached(unreachable_hub, tmp_path):
    with pytest.raises(HubUnreachableError, match="'SAT_d128_lat128.pth' of 'qiuk6/AAR'"):
        SATTokenizer.from_pretrained("qiuk6/AAR", cache_dir=tmp_path)


def test_cached_models_load_without_the_network(unreachable_hub, tmp_path, official_generator):
    from conftest import AAR_PTH, SAT_PTH

    cache = tmp_path / "cache"
    populate_hub_cache(cache, "qiuk6/AAR", {"SAT_d128_lat128.pth": SAT_PTH, "AAR_d16_bs2048.pth": AAR_PTH})
    native = official_generator.save_pretrained(tmp_path / "native")
    files = {name: native / name for name in ("config.json", "model.safetensors")}
    files.update({f"tokenizer/{n}": native / "tokenizer" / n for n in ("config.json", "model.safetensors")})
    populate_hub_cache(cache, "someone/native-aar", files)
    start = time.monotonic()
    gen = AARGenerator.from_pretrained("qiuk6/AAR", cache_dir=cache)
    again = AARGenerator.from_pretrained("someone/native-aar", cache_dir=cache)
    assert time.monotonic() - start < 3 * LIMIT_S
    for model in (gen, again):
        for (name, a), b in zip(official_generator.state_dict().items(), model.state_dict().values()):
            assert torch.equal(a, b), name


def test_cli_reports_it_in_one_line(unreachable_hub, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    start = time.monotonic()
    assert main(["info", "someone/model"]) == 1
    assert time.monotonic() - start < LIMIT_S
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aar: error: cannot reach the Hugging Face Hub"), lines
    assert "HF_HUB_OFFLINE=1" in lines[0]


def test_offline_mode_says_offline(tmp_path):
    """With HF_HUB_OFFLINE=1 (the test suite's setting) an uncached file is a cache miss, not the network."""
    with pytest.raises(FileNotFoundError, match="not in the local cache and offline mode is on") as info:
        SATTokenizer.from_pretrained("someone/model", cache_dir=tmp_path)
    assert not isinstance(info.value, HubUnreachableError)


def test_transformers_clap_fails_in_one_line_too(unreachable_hub, tmp_path):
    pytest.importorskip("transformers")
    from aar import ClapEncoder

    start = time.monotonic()
    with pytest.raises(HubUnreachableError, match="'someone/clap'") as info:
        ClapEncoder.from_pretrained("someone/clap", backend="transformers", cache_dir=tmp_path)
    assert time.monotonic() - start < LIMIT_S and "\n" not in str(info.value)


def test_the_probe_is_bounded_by_its_timeout_in_wall_time(monkeypatch):
    """A name lookup, or one timeout per address, must not stretch the documented bound."""
    import urllib.request

    monkeypatch.setattr(hub, "_probes", {})
    monkeypatch.setattr(hub, "PROBE_TIMEOUT_S", 0.2)
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: time.sleep(1.5))  # never answers in time
    start = time.monotonic()
    reason = hub._probe("http://hub.invalid")
    assert time.monotonic() - start < 0.2 + 0.5
    assert reason == "no answer within 0.2 s"
    assert hub._probe("http://hub.invalid") == reason  # remembered: no second wait
