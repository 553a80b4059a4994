"""The Hub keywords are defined once (``aar.loading.hub.HubKwargs``); every ``from_pretrained`` takes them."""

import pytest

from aar import AARGenerator, ClapEncoder, SATTokenizer
from aar.loading import hub
from aar.metrics import PANNsCNN14, VGGish

LOADERS = [SATTokenizer, AARGenerator, ClapEncoder, VGGish, PANNsCNN14]


class _Downloaded(Exception):
    pass


def test_the_hub_keywords_are_the_four_of_hf_hub_download():
    assert hub.HUB_KEYWORDS == ("revision", "cache_dir", "local_files_only", "token")
    assert hub.hub_options() == {"revision": None, "cache_dir": None, "local_files_only": False,
                                 "token": None}


@pytest.mark.parametrize("cls", LOADERS, ids=lambda c: c.__name__)
def test_every_loader_documents_every_hub_keyword(cls):
    doc = cls.from_pretrained.__doc__
    assert "**hub_kwargs" in doc
    for name in hub.HUB_KEYWORDS:
        assert f"``{name}``" in doc, f"{cls.__name__}.from_pretrained does not document {name}"


@pytest.mark.parametrize("cls", LOADERS, ids=lambda c: c.__name__)
def test_a_misspelt_keyword_is_refused_by_name_before_any_lookup(cls, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("nothing may be downloaded")

    monkeypatch.setattr(hub, "download", no_download)
    with pytest.raises(TypeError, match=r"\['revison'\].*'revision', 'cache_dir'"):
        cls.from_pretrained("some/repo", revison="v1")


@pytest.mark.parametrize("cls", [SATTokenizer, AARGenerator, VGGish, PANNsCNN14], ids=lambda c: c.__name__)
def test_the_hub_keywords_reach_the_download(cls, monkeypatch, tmp_path):
    seen = []

    def download(repo_id, filename, hub_kwargs):
        seen.append((repo_id, hub_kwargs))
        raise _Downloaded

    monkeypatch.setattr(hub, "download", download)
    with pytest.raises(_Downloaded):
        cls.from_pretrained("some/repo", revision="v2", cache_dir=tmp_path, local_files_only=True,
                            token="hf_x")
    assert seen == [("some/repo", {"revision": "v2", "cache_dir": str(tmp_path),
                                   "local_files_only": True, "token": "hf_x"})]
