"""Key tables and weight-norm folding of ``aar.loading.official``."""

import re

import pytest
import torch

from aar.errors import CheckpointError
from aar.loading.official import fold_weight_norm, rename


@pytest.mark.parametrize("shape", [(8, 1, 7), (64, 32, 3), (16, 24, 1), (5, 3, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_weight_norm_folds_bit_for_bit_as_pytorch_computes_it(shape, dtype):
    g_v = torch.Generator().manual_seed(sum(shape))
    v = torch.randn(shape, generator=g_v, dtype=dtype)
    g = torch.rand(shape[0], 1, 1, generator=g_v, dtype=dtype) + 0.5
    folded = fold_weight_norm({"conv.weight_g": g, "conv.weight_v": v, "conv.bias": g.flatten()})
    assert set(folded) == {"conv.weight", "conv.bias"}
    w = folded["conv.weight"]
    assert w.dtype == dtype and not w.requires_grad
    norms = w.flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, g.flatten())  # the closed form: each row has norm g
    reference = getattr(torch, "_weight_norm", None)  # the kernel the official model runs
    if reference is not None:
        assert torch.equal(w, reference(v, g, 0))


def test_rename_maps_drops_and_names_what_it_cannot_map():
    state = {"a.0.w": torch.zeros(1), "drop.me": torch.zeros(1), "b.w": torch.ones(1)}
    rules = ((r"^a\.(\d)\.w$", r"x.\1.weight"), (r"^b\.w$", "y.weight"))
    out = rename(state, rules, re.compile(r"^drop\."), "file.pth")
    assert list(out) == ["x.0.weight", "y.weight"] and out["y.weight"] is state["b.w"]
    with pytest.raises(CheckpointError, match=r"unexpected key\(s\) in file.pth: \['c'\]"):
        rename({**state, "c": torch.zeros(1)}, rules, re.compile(r"^drop\."), "file.pth")


def test_a_weight_norm_pair_of_mismatched_shapes_names_both_keys_and_the_file(tmp_path):
    from conftest import SAT_PTH

    from aar import SATTokenizer

    payload = torch.load(SAT_PTH, weights_only=True)
    state = payload["generator_state_dict"]
    key = "module.encoder.model.0.conv.conv.weight_g"
    state[key] = torch.ones(state[key].shape[0] + 1, 1, 1)
    torch.save(payload, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as info:
        SATTokenizer.from_pretrained(tmp_path / "bad.pth")
    text = str(info.value)
    named = key.removeprefix("module.")  # the key as the file has it, less DataParallel's prefix
    assert str(tmp_path / "bad.pth") in text and named in text and named.replace("_g", "_v") in text
    assert "one per output channel" in text
