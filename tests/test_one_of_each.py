"""What aar keeps once (issue 25): one check of optional packages, one weight hash, one list of audio
extensions, one audio reader. Each rule is checked on the source and on what the function does."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sys
import warnings
from pathlib import Path

import pytest
import torch
from conftest import TINY_SAT

import aar.audio
from aar import SATTokenizer
from aar.errors import MissingExtraError, require_extra
from aar.loading.digest import weights_digest

PACKAGE = Path(__file__).resolve().parents[1] / "aar"


def _sources() -> dict[str, ast.Module]:
    return {str(p.relative_to(PACKAGE.parent)): ast.parse(p.read_text())
            for p in sorted(PACKAGE.rglob("*.py"))}


def _names(node: ast.AST) -> set[str]:
    """Every name and attribute name used below ``node``."""
    return {n.id if isinstance(n, ast.Name) else n.attr
            for n in ast.walk(node) if isinstance(n, (ast.Name, ast.Attribute))}


# ------------------------------------------------------------------------------ optional packages
def test_only_aar_errors_looks_packages_up_or_raises_import_error():
    found = []
    for path, tree in _sources().items():
        if path == "aar/errors.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None and \
                    _names(node.exc) & {"ImportError", "ModuleNotFoundError"}:
                found.append(f"{path}:{node.lineno} raises ImportError")
            if isinstance(node, ast.Attribute) and node.attr == "find_spec":
                found.append(f"{path}:{node.lineno} calls find_spec")
    assert found == [], "go through aar.errors.require_extra"


def test_a_missing_dependency_of_an_installed_package_is_named(tmp_path, monkeypatch):
    (tmp_path / "stand_in_extra").mkdir()
    (tmp_path / "stand_in_extra" / "__init__.py").write_text("import surely_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "stand_in_extra", raising=False)
    assert require_extra("stand_in_extra", "data", "x", load=False) is None  # found, not imported
    assert "stand_in_extra" not in sys.modules
    with pytest.raises(MissingExtraError) as info:
        require_extra("stand_in_extra", "data", "this test")
    assert (info.value.package, info.value.cause) == ("surely_missing_dependency", None)
    assert str(info.value).startswith("this test needs the 'surely_missing_dependency' package, which is not")


def test_a_missing_package_is_refused_before_it_is_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)
    with pytest.raises(MissingExtraError, match=r"aar demo needs the 'gradio' package") as info:
        require_extra("gradio", "demo", "aar demo", load=False)
    assert isinstance(info.value, ImportError) and info.value.name == "gradio"


# ------------------------------------------------------------------------------------ weight hash
def test_only_aar_loading_digest_hashes_tensors():
    found = []
    for path, tree in _sources().items():
        names = _names(tree)
        if path != "aar/loading/digest.py" and "hashlib" in names and names & {"state_dict", "tobytes"}:
            found.append(path)
    assert found == [], "hash weights with aar.loading.digest.weights_digest"


def test_the_tokenizer_fingerprint_is_the_value_codes_files_have_recorded_since_0_1():
    torch.manual_seed(0)
    tok = SATTokenizer(TINY_SAT).eval()
    h = hashlib.sha256(json.dumps(tok.config.to_dict(), sort_keys=True).encode())  # 0.1's formula
    for book in tok.quantizer.codebooks:
        h.update(book.weight.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    assert tok.fingerprint() == h.hexdigest()[:16]


def test_the_public_weight_hashes_are_the_one_function():
    import aar.metrics

    assert aar.metrics.weights_fingerprint is weights_digest
    torch.manual_seed(0)
    tok = SATTokenizer(TINY_SAT).eval()
    with_config = weights_digest(tok, tok.config.to_dict())
    assert with_config != weights_digest(tok) and len(with_config) == 16
    with torch.no_grad():
        next(tok.decoder.parameters()).add_(1.0)  # the decoder: not the codebooks
    assert weights_digest(tok, tok.config.to_dict()) != with_config
    assert SATTokenizer(TINY_SAT).fingerprint() != tok.fingerprint()  # other codebooks


# ------------------------------------------------------------------------------- audio extensions
def test_only_aar_audio_lists_audio_extensions():
    extension = re.compile(r"^\.(aif|aiff|au|caf|flac|mp3|oga|ogg|opus|w64|wav)$")
    found = []
    for path, tree in _sources().items():
        if path == "aar/audio.py":
            continue
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
                continue
            items = node.keys if isinstance(node, ast.Dict) else node.elts
            if sum(isinstance(e, ast.Constant) and bool(extension.match(str(e.value))) for e in items) >= 2:
                found.append(f"{path}:{node.lineno}")
    assert found == [], "use aar.audio.AUDIO_EXTENSIONS (read) or AUDIO_FORMATS (written)"


# ---------------------------------------------------------------------------------- one reader
def test_read_audio_is_deprecated_and_unused(tmp_path):
    file = aar.audio.write_audio(tmp_path / "a.wav", torch.linspace(-0.5, 0.5, 100), 8000)
    with pytest.warns(DeprecationWarning, match="load_audio"):
        wav, rate = aar.audio.read_audio(file)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected, expected_rate = aar.load_audio(file)
    assert rate == expected_rate == 8000 and torch.equal(wav, expected)
    callers = [path for path, tree in _sources().items()
               if path != "aar/audio.py" and "read_audio" in _names(tree)]
    assert callers == []
