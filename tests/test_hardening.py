"""Untrusted files: nothing runs code from a file, every bad file is refused by name, no half-written output.

Tokenizer loading errors of the common kinds are in test_tokenizer_loading.py, codes files in
test_codes_file.py and CLAP checkpoints in test_clap.py; this file adds generator checkpoints, native
folders of both models, the pickle formats torch can write, and source-level guards.
"""

import ast
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import AAR_PTH, SAT_PTH, tiny_generator
from official_layout import aar_official_state, sat_official_state
from payload import Payload

import aar
from aar import AARGenerator, SATTokenizer
from aar.cli import main
from aar.cli.commands import convert_checkpoint
from aar.conditioning.backends import _allowlist_pickle_module, read_laion_state_dict
from aar.errors import CheckpointError

PACKAGE = Path(aar.__file__).parent


@pytest.fixture
def gen(shared_tiny_generator) -> AARGenerator:
    return shared_tiny_generator


# ------------------------------------------------------------------------------ pickled payloads
def write_pickle(path: Path, payload: dict, fmt: str) -> Path:
    if fmt == "zip":
        torch.save(payload, path)
    elif fmt == "zip-protocol-4":
        torch.save(payload, path, pickle_protocol=4)
    elif fmt == "legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:  # a bare pickle, as some tools write .pth files
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=4)
    return path


FORMATS = ["zip", "zip-protocol-4", "legacy", "plain-pickle"]
#: torch warns before refusing protocol-4 pickles; the refusal is what these tests check.
pytestmark = pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")


def _evil_state(kind: str, gen: AARGenerator, marker: Path, where: str) -> dict:
    section = {"sat": "generator_state_dict", "aar": "model_state_dict"}[kind]
    state = sat_official_state(gen.tokenizer) if kind == "sat" else aar_official_state(gen)
    if where == "beside":
        return {section: state, "hook": Payload(marker)}
    key = next(iter(state))
    return {section: {**state, key: Payload(marker)}}


@pytest.mark.parametrize("where", ["beside", "inside"])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["sat", "aar"])
def test_pickled_payload_is_refused_and_never_runs(tmp_path, gen, kind, fmt, where):
    marker = tmp_path / "marker"
    path = write_pickle(tmp_path / f"{kind}.pth", _evil_state(kind, gen, marker, where), fmt)
    with pytest.raises(CheckpointError, match=rf"{kind}\.pth.*refused"):
        if kind == "sat":
            SATTokenizer.from_pretrained(path)
        else:
            AARGenerator.from_pretrained(path, tokenizer=gen.tokenizer)
    with pytest.raises(CheckpointError):
        convert_checkpoint(path, tmp_path / "out", tokenizer=gen.tokenizer)
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_cli_refuses_pickled_checkpoints_and_clap_files(tmp_path, gen, capsys):
    marker = tmp_path / "marker"
    path = write_pickle(tmp_path / "aar.pth", _evil_state("aar", gen, marker, "beside"), "zip")
    assert main(["info", str(path)]) == 1
    assert "refused" in capsys.readouterr().err
    clap = tmp_path / "clap.npy"
    np.save(clap, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    folder = gen.save_pretrained(tmp_path / "gen")
    assert main(["generate", "--clap", str(clap), "-o", str(tmp_path / "o.wav"), "--model", str(folder)]) == 1
    assert "clap.npy" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_clap_reader_refuses_payloads_in_every_format(tmp_path, fmt):
    marker = tmp_path / "marker"
    path = write_pickle(tmp_path / "clap.pt", {"state_dict": {"w": torch.ones(2)}, "x": Payload(marker)}, fmt)
    with pytest.raises(CheckpointError, match="clap.pt.*refused"):
        read_laion_state_dict(path)
    assert not marker.exists()
    harmless = write_pickle(tmp_path / "ok.pt", {"state_dict": {"module.w": torch.ones(2)}, "epoch": 3}, fmt)
    if fmt == "plain-pickle":  # pickle.dump stores tensors through torch.load itself: refused too
        with pytest.raises(CheckpointError, match="refusing to load global torch.storage"):
            read_laion_state_dict(harmless)
    else:
        assert list(read_laion_state_dict(harmless)) == ["w"]


def test_clap_fallback_unpickler_admits_only_its_allowlist():
    unpickler = _allowlist_pickle_module().Unpickler
    allowed = re.compile(
        r"^(torch\._utils\._rebuild_\w+|torch\.\w*Storage|torch\.Size|collections\.OrderedDict"
        r"|_codecs\.encode|numpy\.(core|_core)\.multiarray\.scalar|numpy\.dtype|numpy\.dtypes\.\w+DType)$"
    )
    assert unpickler.allowed and all(allowed.match(name) for name in unpickler.allowed)
    for module, name in [("builtins", "eval"), ("os", "system"), ("torch", "load"),
                         ("subprocess", "Popen"), ("numpy", "load"), ("builtins", "getattr")]:
        with pytest.raises(pickle.UnpicklingError, match=f"{module}.{name}"):
            unpickler.find_class(unpickler.__new__(unpickler), module, name)


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
            yield owner, node.func.attr, {k.arg: k.value for k in node.keywords}


def test_no_loader_in_the_package_can_run_pickled_code():
    """Every torch.load is weights-only (or uses the CLAP allowlist), numpy never unpickles."""
    loads = 0
    for file in sorted(PACKAGE.rglob("*.py")):
        source = file.read_text()
        assert "weights_only=False" not in source, file
        for owner, attr, kwargs in _calls(ast.parse(source)):
            where = f"{file.relative_to(PACKAGE)}: {owner}.{attr}"
            if (owner, attr) == ("torch", "load"):
                loads += 1
                weights_only = kwargs.get("weights_only")
                safe = isinstance(weights_only, ast.Constant) and weights_only.value is True
                allowlist = kwargs.get("pickle_module")
                safe |= isinstance(allowlist, ast.Call) and getattr(allowlist.func, "id", "") == (
                    "_allowlist_pickle_module")
                assert safe, where
            elif (owner, attr) == ("np", "load"):
                flag = kwargs.get("allow_pickle")
                assert isinstance(flag, ast.Constant) and flag.value is False, where
            assert (owner, attr) not in {("pickle", "load"), ("pickle", "loads"), ("torch", "jit")}, where
            assert attr != "load_ckpt", where  # laion-clap's loader unpickles with weights_only=False
    assert loads >= 2


# ------------------------------------------------------------------------- generator checkpoints
def _write_aar(tmp_path, gen, edit) -> Path:
    state = aar_official_state(gen)
    edit(state)
    torch.save({"model_state_dict": state}, tmp_path / "aar.pth")
    return tmp_path / "aar.pth"


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: s.pop("blocks.1.attn.q_bias"), r"missing keys \['blocks.1.attn.q_bias'\]"),
        (lambda s: s.__setitem__("blocks.0.attn.extra", torch.ones(3)),
         r"unexpected key.*blocks.0.attn.extra"),
        (lambda s: s.__setitem__("blocks.1.attn.proj.weight", torch.ones(64, 3)),
         r"mis-shaped keys \['blocks.1.attn.proj.weight: checkpoint \(64, 3\) vs model \(64, 64\)'\]"),
        (lambda s: s.pop("blocks.0.ffn.fc1.weight"), "missing key 'blocks.0.ffn.fc1.weight'"),
        (lambda s: s.__setitem__("blocks.0.attn.scale_mul_1H11", torch.ones(2)),
         r"'blocks.0.attn.scale_mul_1H11' has shape \(2,\), expected 4 dimensions"),
        (lambda s: s.__setitem__("word_embed.weight", torch.ones(64)),
         r"'word_embed.weight' has shape \(64,\)"),
        (lambda s: s.__setitem__("blocks.0.attn.scale_mul_1H11", torch.ones(1, 3, 1, 1)),
         "embed_dim=64 is not divisible by num_heads=3"),
        (lambda s: s.__setitem__("pos_start", 3), "entry 'pos_start' is int, not a tensor"),
    ],
)
def test_generator_checkpoint_keys_are_strict_and_named(tmp_path, gen, edit, match):
    path = _write_aar(tmp_path, gen, edit)
    with pytest.raises(CheckpointError, match=match) as info:
        AARGenerator.from_pretrained(path, tokenizer=gen.tokenizer)
    assert str(path) in str(info.value)


def test_generator_checkpoint_for_another_tokenizer(tmp_path, gen):
    path = _write_aar(tmp_path, gen, lambda s: s.__setitem__("head.weight", torch.ones(100, 64)))
    fit = "codebook_size=100.*does not fit the tokenizer.*codebook_size=256"
    with pytest.raises(CheckpointError, match=fit):
        AARGenerator.from_pretrained(path, tokenizer=gen.tokenizer)


@pytest.mark.parametrize("damage", ["truncated", "empty", "noise", "list", "tokenizer file", "missing"])
def test_unreadable_generator_files_name_the_file(tmp_path, gen, damage):
    path = tmp_path / "aar.pth"
    if damage == "truncated":
        data = AAR_PTH.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "noise":
        path.write_bytes(bytes(range(256)) * 8)
    elif damage == "list":
        torch.save([torch.ones(2)], path)
    elif damage == "tokenizer file":
        path = SAT_PTH
    if damage == "missing":
        with pytest.raises(FileNotFoundError, match="aar.pth"):
            AARGenerator.from_pretrained(path, tokenizer=gen.tokenizer)
        return
    with pytest.raises(CheckpointError) as info:
        AARGenerator.from_pretrained(path, tokenizer=gen.tokenizer)
    message = str(info.value)
    assert str(path) in message
    if damage == "list":
        assert "not a checkpoint of any kind aar knows" in message and "list" in message
    if damage == "tokenizer file":
        assert "is a tokenizer (SAT) checkpoint, but a generator (AAR) checkpoint was wanted" in message


# ------------------------------------------------------------------------------- native folders
WEIGHTS, CONFIG = "model.safetensors", "config.json"


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-64])


DAMAGES = {
    # name: (edit of the folder, error type, pattern, file the message must name)
    "corrupt weights": (lambda f: (f / WEIGHTS).write_bytes(b"\x00" * 20), CheckpointError,
                        "cannot read .* as safetensors", WEIGHTS),
    "truncated weights": (lambda f: _cut(f / WEIGHTS), CheckpointError, "cannot read", WEIGHTS),
    "missing weights": (lambda f: (f / WEIGHTS).unlink(), FileNotFoundError, "has no model.safetensors", ""),
    "missing config": (lambda f: (f / CONFIG).unlink(), FileNotFoundError, "holds neither|no config", ""),
    "config not JSON": (lambda f: (f / CONFIG).write_text("{oops"), ValueError, "not valid JSON", CONFIG),
    "config binary": (lambda f: (f / CONFIG).write_bytes(b"\xff\xfe"), ValueError, "not valid JSON", CONFIG),
    "config a list": (lambda f: (f / CONFIG).write_text("[1]"), ValueError, "must hold a JSON obj", CONFIG),
}


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))


@pytest.mark.parametrize("kind", ["sat", "aar"])
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_native_folders_are_refused_by_name(tmp_path, gen, kind, damage):
    model = gen.tokenizer if kind == "sat" else gen
    loader = SATTokenizer if kind == "sat" else AARGenerator
    folder = model.save_pretrained(tmp_path / "model")
    edit, error, pattern, file = DAMAGES[damage]
    edit(folder)
    with pytest.raises(error, match=pattern) as info:
        loader.from_pretrained(folder)
    assert str(folder / file) in str(info.value)


@pytest.mark.parametrize(
    "kind, changes, pattern",
    [
        ("sat", {"model_type": "vocoder"}, "tokenizer .* was wanted .*model_type 'vocoder'"),
        ("sat", {"n_filters": "4"}, "SATConfig.n_filters must be an integer, got '4'"),
        ("sat", {"scales": [1, 2.5, 75]}, "SATConfig.scales must be a list of integers"),
        ("sat", {"codebook_size": 0}, "codebook_size must be positive, got 0"),
        ("sat", {"n_filter": 4}, r"unknown SATConfig field\(s\) \['n_filter'\]"),
        ("aar", {"depth": True}, "AARConfig.depth must be an integer, got True"),
        ("aar", {"mlp_ratio": "4"}, "AARConfig.mlp_ratio must be a number"),
        ("aar", {"num_heads": 3}, "not divisible by num_heads=3"),
    ],
)
def test_bad_config_values_name_the_field_and_file(tmp_path, gen, kind, changes, pattern):
    folder = (gen.tokenizer if kind == "sat" else gen).save_pretrained(tmp_path / "model")
    _edit_config(folder, **changes)
    with pytest.raises(ValueError, match=pattern) as info:
        (SATTokenizer if kind == "sat" else AARGenerator).from_pretrained(folder)
    assert str(folder / "config.json") in str(info.value)


@pytest.mark.parametrize("config", [b"[1]", b"{oops", b"\xff\xfe"])
def test_hub_repo_with_a_bad_config_names_it(tmp_path, gen, config):
    from official_layout import populate_hub_cache

    folder = gen.tokenizer.save_pretrained(tmp_path / "saved")
    populate_hub_cache(tmp_path / "cache", "someone/broken",
                       {"config.json": config, "model.safetensors": folder / "model.safetensors"})
    for loader in (SATTokenizer, AARGenerator):
        with pytest.raises(ValueError, match="config.json (is not valid JSON|must hold a JSON object)"):
            loader.from_pretrained("someone/broken", cache_dir=tmp_path / "cache")


def test_generator_folder_with_a_broken_tokenizer(tmp_path, gen):
    folder = gen.save_pretrained(tmp_path / "gen")
    (folder / "tokenizer" / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="tokenizer/model.safetensors"):
        AARGenerator.from_pretrained(folder)
    (folder / "tokenizer" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        AARGenerator.from_pretrained(folder)


def test_native_generator_weights_are_strict(tmp_path, gen):
    from safetensors.torch import load_file, save_file

    folder = gen.save_pretrained(tmp_path / "gen")
    state = load_file(str(folder / "model.safetensors"))
    state["blocks.0.ffn.fc1.weight"] = torch.zeros(3, 64)
    state.pop("head.bias")
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing keys \['head.bias'\].*mis-shaped keys.*fc1.weight"):
        AARGenerator.from_pretrained(folder)


# ------------------------------------------------------------------------- no half-written output
def _crash_on_call(number: int, real):
    """A ``save_file`` that writes normally until its ``number``-th call, which dies half-way."""
    calls = []

    def save_file(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) < number:
            return real(tensors, filename, metadata=metadata)
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    return save_file


def _files(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("kind, crash", [("sat", 1), ("aar", 1), ("aar", 2)])
def test_interrupted_save_never_loads_as_a_mix(tmp_path, monkeypatch, kind, crash):
    """Weights that fail to write leave a tokenizer folder as it was; a generator folder whose
    tokenizer was already replaced (crash 2) is refused rather than loaded with the old generator."""
    import aar.loading.native

    old, new = tiny_generator(0), tiny_generator(1)
    pick = (lambda g: g.tokenizer) if kind == "sat" else (lambda g: g)
    loader = SATTokenizer if kind == "sat" else AARGenerator
    folder = pick(old).save_pretrained(tmp_path / "model")
    before, complete = _files(folder), _files_of(pick(new), tmp_path / "reference")
    monkeypatch.setattr(aar.loading.native, "save_file", _crash_on_call(crash, aar.loading.native.save_file))
    with pytest.raises(OSError, match="disk full"):
        pick(new).save_pretrained(folder)
    after = _files(folder)
    assert not any(".part" in p.name for p in folder.rglob("*"))
    assert all(data in (before.get(rel), complete.get(rel)) for rel, data in after.items())  # old or new
    if kind == "sat":
        assert after == before
        loaded = loader.from_pretrained(folder)
        assert all(torch.equal(v, pick(old).state_dict()[k]) for k, v in loaded.state_dict().items())
    else:
        with pytest.raises(FileNotFoundError, match="holds neither"):
            loader.from_pretrained(folder)
    monkeypatch.undo()
    pick(new).save_pretrained(folder)
    assert _files(folder) == complete


def _files_of(model, folder: Path) -> dict:
    """The files a complete save of ``model`` writes."""
    return _files(model.save_pretrained(folder))


def test_failed_audio_write_keeps_the_old_file(tmp_path, monkeypatch):
    import soundfile

    from aar.audio import write_audio

    path = write_audio(tmp_path / "a.wav", torch.zeros(1, 100), 24000)
    before = path.read_bytes()

    def crash(file, *args, **kwargs):
        Path(file).write_bytes(b"RIFF half")
        raise RuntimeError("encoder failed")

    monkeypatch.setattr(soundfile, "write", crash)
    with pytest.raises(RuntimeError, match="encoder failed"):
        write_audio(path, torch.ones(1, 100) * 0.5, 24000)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["a.wav"]
