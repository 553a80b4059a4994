"""Every way to load a tokenizer, and every way loading must refuse a file."""

import json
import pickle

import pytest
import torch
from conftest import SAT_PTH, TINY_SAT
from official_layout import populate_hub_cache, sat_official_state, save_sat_official
from payload import Payload

from aar import SATConfig, SATTokenizer
from aar.cli.commands import convert_checkpoint
from aar.errors import CheckpointError, WrongModelKindError


def _same_outputs(a: SATTokenizer, b: SATTokenizer, wav=None, atol=1e-5):
    wav = torch.randn(1, 1, 30000) * 0.2 if wav is None else wav
    ca, cb = a.encode(wav, 24000), b.encode(wav, 24000)
    assert ca.equal(cb)
    torch.testing.assert_close(a.decode(ca), b.decode(cb), atol=atol, rtol=0)


def test_local_pth_infers_the_config(official_tokenizer):
    c = official_tokenizer.config
    assert (c.n_filters, c.dimension, c.latent_dim, c.lstm_layers, c.n_residual_layers) == (8, 32, 16, 2, 1)
    got = (c.ratios, c.codebook_size, c.num_scales, c.num_phi, c.phi_kernel)
    assert got == ((8, 5, 4, 2), 1024, 16, 6, 9)
    assert not official_tokenizer.training


@pytest.mark.parametrize("style", ["g_v", "parametrizations"])
@pytest.mark.parametrize("prefix", ["module.", ""])
@pytest.mark.parametrize(
    "config",
    [TINY_SAT, SATConfig(n_filters=2, dimension=12, latent_dim=6, codebook_size=32, lstm_layers=1,
                         n_residual_layers=2, ratios=(8, 5, 4, 2))],
)
def test_official_layouts_of_other_shapes(tmp_path, style, prefix, config):
    torch.manual_seed(1)
    native = SATTokenizer(config).eval()
    path = tmp_path / "sat.pth"
    save_sat_official(native, path, style=style, prefix=prefix)
    loaded = SATTokenizer.from_pretrained(path)
    assert loaded.config == config
    _same_outputs(native, loaded)


def test_save_pretrained_round_trip(tmp_path, official_tokenizer, reference):
    folder = official_tokenizer.save_pretrained(tmp_path / "sat")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["model_type"] == "sat"
    again = SATTokenizer.from_pretrained(folder)
    assert again.config == official_tokenizer.config
    for key, value in official_tokenizer.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    _same_outputs(official_tokenizer, again, reference["audio"], atol=0)


def test_convert_checkpoint_writes_native_folder(tmp_path, official_tokenizer, reference):
    folder = convert_checkpoint(SAT_PTH, tmp_path / "native")
    _same_outputs(official_tokenizer, SATTokenizer.from_pretrained(folder), reference["audio"], atol=0)


def test_device_and_dtype_arguments(official_tokenizer):
    tok = SATTokenizer.from_pretrained(SAT_PTH, device="cpu", dtype=torch.float64)
    assert tok.dtype == torch.float64 and tok.device.type == "cpu"
    out = tok.decode(tok.encode(torch.randn(1, 2400) * 0.1, 24000))
    assert out.dtype == torch.float32


# ---------------------------------------------------------------------------- Hub, offline
def test_hub_official_repo_default_and_filename(tmp_path, official_tokenizer):
    torch.manual_seed(2)
    other = SATTokenizer(TINY_SAT).eval()
    save_sat_official(other, tmp_path / "other.pth")
    populate_hub_cache(tmp_path / "cache", "qiuk6/AAR", {
        "SAT_d128_lat128.pth": SAT_PTH,
        "SAT_bs_1536_d1024_lat64.pth": tmp_path / "other.pth",
    })
    default = SATTokenizer.from_pretrained("qiuk6/AAR", cache_dir=tmp_path / "cache")
    assert default.config == official_tokenizer.config
    picked = SATTokenizer.from_pretrained(
        "qiuk6/AAR", filename="SAT_bs_1536_d1024_lat64.pth", cache_dir=tmp_path / "cache"
    )
    assert picked.config == TINY_SAT
    _same_outputs(other, picked)


def test_hub_native_repo_and_revision(tmp_path, tiny_tokenizer):
    folder = tiny_tokenizer.save_pretrained(tmp_path / "saved")
    files = {name: folder / name for name in ("config.json", "model.safetensors")}
    populate_hub_cache(tmp_path / "cache", "someone/sat-tiny", files, revision="v1",
                       commit="1" * 40)
    loaded = SATTokenizer.from_pretrained("someone/sat-tiny", revision="v1", cache_dir=tmp_path / "cache",
                                          local_files_only=True)
    _same_outputs(tiny_tokenizer, loaded, atol=0)
    with pytest.raises(FileNotFoundError, match="not in the local cache"):
        SATTokenizer.from_pretrained("someone/sat-tiny", cache_dir=tmp_path / "cache")


def test_hub_missing_repo_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="'nobody/nothing'"):
        SATTokenizer.from_pretrained("nobody/nothing", cache_dir=tmp_path)


def test_missing_local_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        SATTokenizer.from_pretrained(str(tmp_path / "missing" / "sat.pth"))
    with pytest.raises(FileNotFoundError, match="holds neither"):
        SATTokenizer.from_pretrained(tmp_path)
    with pytest.raises(TypeError, match="name_or_path"):
        SATTokenizer.from_pretrained(42)


# ---------------------------------------------------------------------------- strictness and safety
def _official(tok):
    return sat_official_state(tok)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: s.pop("module.decoder.model.15.conv.conv.bias"),
         r"missing keys \['decoder.model.15.bias'\]"),
        (lambda s: s.__setitem__("module.encoder.model.0.conv.conv.scale", torch.ones(1)),
         "unexpected key.*encoder.model.0.conv.conv.scale"),
        (lambda s: s.__setitem__("module.quantizer.vq.project_in.weight", torch.ones(8, 8)),
         "unexpected key.*quantizer.project_in.weight"),
        (lambda s: s.__setitem__("module.quantizer.vq.quant_resi.qresi_ls.0.bias", torch.ones(3)),
         r"mis-shaped keys \['quantizer.phi.0.bias: checkpoint \(3,\) vs model \(8,\)'\]"),
        (lambda s: s.pop("module.encoder.model.0.conv.conv.weight_g"), "weight-norm pair.*incomplete"),
    ],
)
def test_strict_loading_names_the_key(tmp_path, tiny_tokenizer, edit, match):
    state = _official(tiny_tokenizer)
    edit(state)
    torch.save({"generator_state_dict": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=match):
        SATTokenizer.from_pretrained(tmp_path / "bad.pth")


def test_native_folder_strictness(tmp_path, tiny_tokenizer):
    from safetensors.torch import save_file

    folder = tiny_tokenizer.save_pretrained(tmp_path / "saved")
    state = dict(tiny_tokenizer.state_dict())
    state.pop("quantizer.codebooks.3.weight")
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="quantizer.codebooks.3.weight"):
        SATTokenizer.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["n_filter"] = 4
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"unknown SATConfig field\(s\) \['n_filter'\]"):
        SATTokenizer.from_pretrained(folder)


def test_pickled_payload_is_refused_and_never_runs(tmp_path, tiny_tokenizer):
    marker = tmp_path / "pwned"
    state = _official(tiny_tokenizer)
    torch.save({"generator_state_dict": state, "hook": Payload(str(marker))}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="evil.pth.*refused"):
        SATTokenizer.from_pretrained(tmp_path / "evil.pth")
    assert not marker.exists()
    with open(tmp_path / "plain.pkl", "wb") as f:
        pickle.dump({"generator_state_dict": Payload(str(marker))}, f)
    with pytest.raises(CheckpointError):
        SATTokenizer.from_pretrained(tmp_path / "plain.pkl")
    assert not marker.exists()


def test_truncated_and_foreign_files(tmp_path, tiny_tokenizer):
    save_sat_official(tiny_tokenizer, tmp_path / "sat.pth")
    data = (tmp_path / "sat.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pth"):
        SATTokenizer.from_pretrained(tmp_path / "cut.pth")
    torch.save({"model_state_dict": {}}, tmp_path / "gen.pth")
    with pytest.raises(WrongModelKindError, match="gen.pth is a generator .* tokenizer .* wanted") as info:
        SATTokenizer.from_pretrained(tmp_path / "gen.pth")
    assert (info.value.found, info.value.wanted) == ("aar", ("sat",))
    (tmp_path / "noise.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="noise.pth"):
        SATTokenizer.from_pretrained(tmp_path / "noise.pth")
