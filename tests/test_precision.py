"""precision= fp32 / bf16 / int8 / auto: accuracy gates, the choice of ``auto``, and fallbacks."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from conftest import AAR_PTH, SAT_PTH, TINY_SAT, tiny_generator

import aar.precision.cpu as cpu_probe
import aar.precision.int8 as int8
import aar.precision.policy as precision
from aar import AARConfig, AARGenerator, SATTokenizer, errors
from aar.nn.linear import Linear
from aar.precision.int8 import Int8Linear
from aar.precision.swaps import FusedAdaLNBlock, FusedCosineSelfAttention, to_int8, to_reduced

pytestmark = pytest.mark.usefixtures("one_thread")


def features(flags=(), capability="AVX512", amx=False, kernel=True, vendor="AuthenticAMD",
             saturates=False) -> precision.CpuFeatures:
    return precision.CpuFeatures(frozenset(flags), capability, amx, kernel, vendor, saturates)


def int8_modules(transformer) -> list[Int8Linear]:
    return [m for m in transformer.modules() if isinstance(m, Int8Linear)]


def gates(ref: AARGenerator, low: AARGenerator, codes, clap) -> dict:
    """Teacher-forced measures of ``low`` against ``ref`` on ``codes``."""
    a, b = ref.logits(codes, clap), low.logits(codes, clap)
    log_a, log_b = a.log_softmax(-1), b.log_softmax(-1)
    idx = torch.cat([c.reshape(c.shape[0], -1) for c in codes], dim=1).unsqueeze(-1)  # (B, L, 1)
    return {
        "dtype": b.dtype,
        "kl": float((log_a.exp() * (log_a - log_b)).sum(-1).mean()),
        "top1": float((a.argmax(-1) == b.argmax(-1)).float().mean()),
        "max_err": float((a - b).abs().max()),
        "ll_diff": float((log_a.gather(-1, idx) - log_b.gather(-1, idx)).mean().abs()),
    }


@pytest.fixture(scope="module")
def ref() -> AARGenerator:
    return AARGenerator.from_pretrained(AAR_PTH, tokenizer=SAT_PTH)


@pytest.fixture(scope="module", params=["kernel", "emulated"])
def low(request, ref) -> AARGenerator:
    """The fixture in int8: PyTorch's kernel, and the float32 emulation a CPU without it runs."""
    if request.param == "kernel":
        if not int8.kernel_available():
            pytest.skip("this PyTorch build has no quantized dynamic linear kernel")
        return AARGenerator.from_pretrained(AAR_PTH, tokenizer=SAT_PTH, precision="int8")
    return precision.apply_precision(copy.deepcopy(ref), "int8", emulate=True)


def test_int8_gates_on_the_fixture(ref, low, reference):
    """Measured (docs/performance.md), 8-bit activations with VNNI: KL 3.3e-5 nats/token, top-1
    99.56 %, max logit error 0.049 (logits up to 11.6), log-likelihood of the official fp32-sampled
    codes within 0.0002 nats; 7-bit (CPUs without VNNI) in the next test."""
    codes = [reference[f"codes.{i}"][:, 0] for i in range(16)]
    g = gates(ref, low, codes, reference["clap"])
    assert g["dtype"] == torch.float32
    assert g["kl"] < 2e-4 and g["top1"] >= 0.98 and g["max_err"] < 0.15 and g["ll_diff"] < 0.003


def test_7_bit_int8_gates_on_the_fixture(ref, reference):
    """The path of CPUs without VNNI (AVX2, AVX-512 without VNNI): 7-bit activations, whose integer
    products are exact on every CPU class, so this measures that class here. Measured: KL 9.1e-5
    nats/token, top-1 99.12 %, max logit error 0.085 (8-bit on such a CPU saturated: KL 5.3e-4,
    top-1 97.6 %)."""
    low = copy.deepcopy(ref)
    to_int8(low.transformer, reduce_range=True, emulate=True)
    codes = [reference[f"codes.{i}"][:, 0] for i in range(16)]
    g = gates(ref, low, codes, reference["clap"])
    assert g["kl"] < 2e-4 and g["top1"] >= 0.99 and g["max_err"] < 0.15 and g["ll_diff"] < 0.003


def test_int8_greedy_audio_on_the_fixture(ref, low, reference):
    """Measured: 97.5 % of greedy tokens and the 5 coarsest scales equal; audio max error 0.14."""
    greedy = dict(cfg=3.0, top_k=1, top_p=None)
    x, y = ref.generate_codes(reference["clap"], **greedy), low.generate_codes(reference["clap"], **greedy)
    assert torch.cat([(p == q).flatten() for p, q in zip(x, y)]).float().mean() >= 0.9
    assert all(torch.equal(p, q) for p, q in zip(x[:4], y[:4]))
    assert (ref.tokenizer.decode(x) - low.tokenizer.decode(y)).abs().max() < 0.3


def test_int8_gates_at_a_wider_random_model():
    """Random weights, 256 wide (flat logits: KL is the measure; the released size is in the benchmark)."""
    torch.manual_seed(0)
    config = AARConfig(depth=2, embed_dim=256, num_heads=4, latent_dim=TINY_SAT.latent_dim,
                       codebook_size=TINY_SAT.codebook_size)
    ref = AARGenerator(config, SATTokenizer(TINY_SAT)).eval()
    low = precision.apply_precision(copy.deepcopy(ref), "int8")
    gen = torch.Generator().manual_seed(1)
    codes = [torch.randint(0, config.codebook_size, (2, s), generator=gen) for s in config.scales]
    g = gates(ref, low, codes, torch.nn.functional.normalize(torch.randn(2, 512, generator=gen), dim=1))
    assert g["kl"] < 1e-5 and g["top1"] >= 0.97 and 0 < g["max_err"] < 0.05 and g["ll_diff"] < 1e-4


def test_emulation_matches_the_kernel():
    """The emulation models the kernel this process runs, saturation included (8-bit activations on
    a CPU without VNNI): the two agree to float32 rounding on every CPU class, for both widths."""
    if not int8.kernel_available():
        pytest.skip("no quantized dynamic linear kernel")
    torch.manual_seed(0)
    for K in (32, 33):  # an odd K pairs its last product with padding
        w, x = torch.randn(48, K) / 6, torch.randn(5, 7, K)
        for reduce_range in (False, True):
            kernel = int8.Int8Weight(w, reduce_range)
            emulated = int8.Int8Weight(w, reduce_range, emulate=True)
            assert (kernel.mode, emulated.mode) == (int8.KERNEL, int8.EMULATED)
            torch.testing.assert_close(kernel(x, None), emulated(x, None), atol=2e-5, rtol=1e-5)


def test_default_int8_products_are_within_the_arithmetic_bound():
    """With the default width (7 bits where the kernel saturates 8), every product is within the
    worst-case rounding bound on every CPU class, and each row's error scales with that row alone."""
    torch.manual_seed(0)
    w, bias = torch.randn(64, 96) / 8, torch.randn(64)
    x = torch.randn(6, 96) * torch.logspace(-2, 2, 6)[:, None]
    for emulate in (False, True):
        layer = int8.Int8Weight(w, emulate=emulate)
        err = (layer(x, bias) - (x @ w.T + bias)).abs()
        assert 0 < err.max() and bool((err <= int8.rounding_bound(x, w, layer.reduce_range)).all())
        assert err[0].max() < 1e-3 < err[-1].max()


def test_saturating_emulation_is_exact():
    """A simulated saturating CPU: 8-bit pairs of 255 x 127 overflow int16, 7-bit pairs never do."""
    w, x = torch.ones(1, 4), torch.tensor([[1.0, 1.0, -1.0, 1.0]])
    # codes 255, 255 (zero 128): the pair 255*127 + 255*127 = 64770 saturates to 32767; codes 1,
    # 255: 127 + 32385 fits. The zero point takes 128 * 127 per feature off the sum.
    acc_exact, acc_sat = 64770 + 32512 - 4 * 128 * 127, 32767 + 32512 - 4 * 128 * 127
    step = float(torch.tensor(2.0) / 255) / 127
    sat = int8.Int8Weight(w, reduce_range=False, emulate=True, saturate=True)
    exact = int8.Int8Weight(w, reduce_range=False, emulate=True, saturate=False)
    assert float(exact(x, None)) == pytest.approx(acc_exact * step, rel=1e-6)
    assert float(sat(x, None)) == pytest.approx(acc_sat * step, rel=1e-6)
    seven = int8.Int8Weight(w, reduce_range=True, emulate=True, saturate=True)
    assert float(seven(x, None)) == pytest.approx(2.0, abs=0.05)


@pytest.mark.skipif(not int8.kernel_available(), reason="no quantized dynamic linear kernel")
def test_the_avx2_kernel_is_what_the_emulation_models():
    """FBGEMM's AVX2 kernel (``FBGEMM_ENABLE_INSTRUCTIONS=AVX2`` selects it on a larger x86 CPU and
    changes nothing on an AVX2-only one) saturates 8-bit products: the probe says so, the emulation
    reproduces it, and the default width avoids it."""
    import os
    import subprocess
    import sys

    if "avx2" not in precision.cpu_features().flags:
        pytest.skip("FBGEMM's AVX2 kernels need an x86 CPU with AVX2")
    script = (
        "import torch, aar.precision.int8 as int8\n"
        "torch.manual_seed(0)\n"
        "w, x = torch.randn(48, 33) / 6, torch.randn(35, 33)\n"
        "assert int8.kernel_saturates()\n"
        "for rr in (False, True):\n"
        "    k, e = int8.Int8Weight(w, rr), int8.Int8Weight(w, rr, emulate=True)\n"
        "    assert (k(x, None) - e(x, None)).abs().max() < 2e-5, rr\n"
        "err8 = (int8.Int8Weight(w, False)(x, None) - x @ w.T).abs().max()\n"
        "err = (int8.Int8Weight(w)(x, None) - x @ w.T).abs().max()\n"
        "assert err8 > 0.3 and err < 0.1, (err8, err)\n"
        "print('ok')\n")
    env = {**os.environ, "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def test_weight_quantization_is_per_output_channel():
    w = torch.tensor([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [100.0, 1.0, -50.0]])
    q, scale = int8.quantize_weight(w)
    assert q.dtype == torch.int8 and q.abs().max() == 127
    torch.testing.assert_close(scale, torch.tensor([1 / 127, 1.0, 100 / 127]))
    assert q[0].tolist() == [64, -127, 32] and q[1].tolist() == [0, 0, 0]  # 63.5 rounds to even


def test_fp32_is_the_default_bit_for_bit(ref, reference):
    same = AARGenerator.from_pretrained(AAR_PTH, tokenizer=SAT_PTH, precision="fp32")
    codes = [reference[f"codes.{i}"][:, 0] for i in range(16)]
    assert torch.equal(same.logits(codes, reference["clap"]), ref.logits(codes, reference["clap"]))
    assert precision.precision_of(same) == precision.precision_of(ref) == "fp32"


def test_bf16_precision_is_dtype_bfloat16():
    gen = AARGenerator.from_pretrained(AAR_PTH, tokenizer=SAT_PTH, precision="bf16")
    assert gen.dtype == torch.bfloat16 and gen.tokenizer.dtype == torch.float32
    assert precision.precision_of(gen) == "bf16"
    old = AARGenerator.from_pretrained(AAR_PTH, tokenizer=SAT_PTH, dtype=torch.bfloat16)
    assert precision.precision_of(old) == "bf16"


@pytest.mark.parametrize("kwargs, match", [
    (dict(precision="int4"), "precision must be one of"),
    (dict(precision="int8", dtype=torch.bfloat16), "drop dtype"),
    (dict(precision="int8", device="meta"), "CPU only"),
])
def test_bad_precision_is_refused_before_loading(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AARGenerator.from_pretrained("/nonexistent", **kwargs)


def test_tokenizer_precision():
    assert SATTokenizer.from_pretrained(SAT_PTH, precision="auto").dtype == torch.float32
    assert SATTokenizer.from_pretrained(SAT_PTH, precision="bf16").dtype == torch.bfloat16
    with pytest.raises(ValueError, match="tokenizer takes 'fp32', 'bf16' or 'auto'"):
        SATTokenizer.from_pretrained(SAT_PTH, precision="int8")
    for kind in (SATTokenizer, AARGenerator):  # one validation for both models
        with pytest.raises(ValueError, match="drop dtype=torch.float16"):
            kind.from_pretrained(SAT_PTH if kind is SATTokenizer else AAR_PTH, precision="auto",
                                 dtype=torch.float16)


@pytest.mark.parametrize("cpu, expected", [
    (features({"avx512_vnni", "avx512_bf16"}), "int8"),                          # AMD EPYC, VNNI
    (features({"avx512_vnni", "amx_tile"}, amx=True, vendor="GenuineIntel"), "int8"),  # Xeon, AMX
    (features({"avx512_vnni"}, vendor="GenuineIntel"), "int8"),                   # Xeon, no AMX
    (features({"avx2"}, "AVX2", saturates=True), "int8"),                         # AVX2 only: 7-bit
    (features({"avx512f"}, saturates=True, vendor="GenuineIntel"), "int8"),       # AVX-512, no VNNI
    (features(amx=True, kernel=False, vendor="GenuineIntel"), "bf16"),            # AMX, no int8 kernel
    (features({"avx512_bf16"}, kernel=False), "bf16"),                            # AMD, no int8 kernel
    (features({"avx512_bf16"}, kernel=False, vendor="GenuineIntel"), "fp32"),     # Intel, no AMX
    (features({"asimd"}, capability="DEFAULT", vendor=""), "fp32"),               # ARM
    (features(capability="DEFAULT", kernel=False), "fp32"),                       # nothing fast
])
def test_auto_is_a_function_of_the_cpu_features(monkeypatch, cpu, expected):
    def measured():
        raise AssertionError("auto must decide from the features, never from a timing")

    monkeypatch.setattr(cpu_probe, "measured_speedups", measured)
    assert precision.auto_precision("cpu", cpu) == expected == precision.auto_precision("cpu", cpu)


def test_two_processes_choose_the_same_auto_precision():
    import subprocess
    import sys

    script = ("from aar.precision.policy import auto_precision, cpu_features; f = cpu_features(); "
              "print(auto_precision(), sorted(f.flags), f.capability, f.amx_bf16, f.vendor, "
              "f.int8_saturates)")
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
            for _ in range(2)]
    assert runs[0].returncode == 0 and runs[0].stdout == runs[1].stdout, runs[0].stderr[-1000:]
    assert runs[0].stdout.split()[0] == precision.auto_precision("cpu")


def test_auto_off_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision.auto_precision("cuda") == "bf16"
    assert precision.auto_precision("meta") == "fp32"


def test_measured_speedups_are_cached():
    first = precision.measured_speedups()
    assert set(first) == {"bf16", "int8"} and all(v > 0 for v in first.values())
    assert precision.measured_speedups() is first


def test_cpu_without_the_kernel_runs_emulated_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(int8, "kernel_available", lambda: False)
    monkeypatch.setattr(errors, "_said", set())
    x = torch.randn(3, 16)
    with caplog.at_level(logging.WARNING, logger="aar.precision.int8"):
        layer = Int8Linear.from_float(Linear(16, 8))
        Int8Linear.from_float(Linear(16, 8))
    assert layer.int8.mode == int8.EMULATED and len(caplog.records) == 1
    assert "emulated" in caplog.records[0].getMessage()
    assert 0 < (layer(x) - torch.nn.functional.linear(x, layer.weight, layer.bias)).abs().max() < 0.05


def test_saturating_cpu_gets_7_bit_activations(monkeypatch):
    monkeypatch.setattr(cpu_probe, "cpu_features", lambda: features({"avx2"}, "AVX2", saturates=True))
    torch.manual_seed(0)
    config = AARConfig(depth=1, embed_dim=64, num_heads=1, latent_dim=8, codebook_size=256)
    gen = AARGenerator(config, SATTokenizer(TINY_SAT)).eval()
    precision.apply_precision(gen, "int8")
    layers = int8_modules(gen.transformer)
    assert len(layers) == 6 and all(layer.int8.reduce_range for layer in layers)
    assert gen.generate(torch.randn(1, 512), seed=0).shape[:2] == (1, 1)
    monkeypatch.setattr(cpu_probe, "cpu_features", lambda: features({"avx512_vnni"}))
    precision.apply_precision(gen, "int8")
    assert not any(layer.int8.reduce_range for layer in int8_modules(gen.transformer))


def test_int8_on_an_unmeasured_cpu_says_auto_would_not_choose_it(monkeypatch, caplog):
    monkeypatch.setattr(cpu_probe, "cpu_features", lambda: features({"asimd"}, "DEFAULT", vendor=""))
    monkeypatch.setattr(errors, "_said", set())
    with caplog.at_level(logging.WARNING, logger="aar.precision.policy"):
        precision.apply_precision(tiny_generator(), "int8")
    assert any("would not choose int8" in r.getMessage() for r in caplog.records)


def test_int8_follows_weight_changes(caplog):
    torch.manual_seed(0)
    layer, x = Int8Linear.from_float(Linear(32, 16)), torch.randn(4, 32)
    twin = copy.deepcopy(layer)
    assert twin.int8 is not None and twin.int8.source is twin.weight
    torch.testing.assert_close(twin(x), layer(x))
    new = {"weight": torch.randn(16, 32), "bias": torch.zeros(16)}
    layer.load_state_dict(new)  # quantized again
    assert layer.int8.source is layer.weight
    err = (layer(x) - x @ new["weight"].T).abs()
    bound = int8.rounding_bound(x, new["weight"], layer.int8.reduce_range)
    assert 0 < err.max() and bool((err <= bound).all())
    layer.weight.data.mul_(2)  # written in place: call requantize()
    layer.requantize()
    bound = int8.rounding_bound(x, layer.weight.detach(), layer.int8.reduce_range)
    assert bool(((layer(x) - x @ (2 * new["weight"]).T).abs() <= bound).all())
    with caplog.at_level(logging.WARNING, logger="aar.precision.int8"):
        layer.weight = torch.nn.Parameter(torch.ones(16, 32))  # replaced: runs unquantized
        assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
    assert "replaced" in caplog.records[0].getMessage()


def test_int8_refuses_other_devices():
    with pytest.raises(ValueError, match="CPU only"):
        int8.Int8Weight(torch.randn(4, 4, device="meta"))
    weight = int8.Int8Weight(torch.randn(4, 4))
    with pytest.raises(ValueError, match="CPU only"):
        weight(torch.randn(2, 4, device="meta"), None)


def test_cli_generate_with_int8(tmp_path, reference):
    import numpy as np
    import soundfile as sf

    from aar.cli import main

    AARGenerator.from_pretrained(AAR_PTH, tokenizer=SAT_PTH).save_pretrained(tmp_path / "gen")
    np.save(tmp_path / "clap.npy", reference["clap"][0].numpy())
    out = tmp_path / "int8.wav"
    assert main(["generate", "--clap", str(tmp_path / "clap.npy"), "-o", str(out), "--model",
                 str(tmp_path / "gen"), "--seed", "5", "--precision", "int8", "-q"]) == 0
    audio, _ = sf.read(out, dtype="float32")
    low = AARGenerator.from_pretrained(tmp_path / "gen", precision="int8")
    expected = low.generate(reference["clap"][:1], seed=5)[0, 0].numpy()
    np.testing.assert_allclose(audio, expected, atol=1e-4)


@pytest.mark.parametrize("emulate", [False, True])
def test_int8_bias_is_added_and_follows_changes(emulate):
    torch.manual_seed(0)
    w, x, bias = torch.randn(48, 32) / 6, torch.randn(5, 32), torch.randn(48)
    layer = int8.Int8Weight(w, emulate=emulate)
    no_bias = layer(x, None)
    torch.testing.assert_close(layer(x, bias) - no_bias, bias.expand(5, -1), atol=1e-5, rtol=0)
    with torch.no_grad():
        bias.add_(1.0)  # in place: followed
    torch.testing.assert_close(layer(x, bias) - no_bias, bias.expand(5, -1), atol=1e-5, rtol=0)
    assert torch.equal(layer(x, None), no_bias)


@pytest.mark.parametrize("emulate", [False, True])
@pytest.mark.parametrize("reduce_range", [False, True])
def test_int8_takes_any_leading_dims_and_dtype_and_rows_are_independent(emulate, reduce_range):
    if not emulate and not int8.kernel_available():
        pytest.skip("no quantized dynamic linear kernel")
    torch.manual_seed(0)
    w, bias = torch.randn(24, 16) / 4, torch.randn(24)
    layer = int8.Int8Weight(w, reduce_range, emulate=emulate)
    rows = torch.randn(6, 16) * torch.tensor([1e-3, 1, 10, 0.1, 100, 1])[:, None]
    whole = layer(rows, bias)
    assert torch.equal(layer(rows[0], bias), whole[0])
    assert torch.equal(layer(rows.view(2, 3, 16), bias), whole.view(2, 3, 24))
    assert torch.equal(layer(rows.view(3, 2, 16).transpose(0, 1), bias), whole.view(3, 2, 24).transpose(0, 1))
    assert torch.equal(layer(rows.double(), bias), whole)
    for i in range(6):  # per-row scales: a row alone computes exactly what it computes in a batch
        assert torch.equal(layer(rows[i:i + 1], bias), whole[i:i + 1])
    with pytest.raises(ValueError, match="16"):
        layer(torch.randn(2, 15), bias)


def test_int8_generation_under_inference_mode():
    """Generation under ``torch.inference_mode`` gives the tokens of ``no_grad``."""
    gen = precision.apply_precision(tiny_generator(), "int8")
    clap = torch.nn.functional.normalize(torch.randn(2, 512, generator=torch.Generator().manual_seed(3)), 1)
    expected = gen.generate_codes(clap, seed=0)
    with torch.inference_mode():
        codes = gen.generate_codes(clap, seed=0)
        again = gen.generate_codes(clap, seed=0)
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(expected, codes, again))


def test_int8_ffn_uses_the_erf_gelu_and_fp32_and_bf16_the_tanh_gelu():
    torch.manual_seed(0)
    x, act = torch.randn(3, 2, 64) * 3, torch.nn.functional.gelu
    for swap, approximate in ((lambda t: t, "tanh"), (lambda t: to_reduced(t, torch.bfloat16), "tanh"),
                              (lambda t: to_int8(t, emulate=True), "none")):
        ffn = swap(tiny_generator().transformer).blocks[0].ffn
        assert torch.equal(ffn(x), ffn.fc2(act(ffn.fc1(x), approximate=approximate)))
        other = "none" if approximate == "tanh" else "tanh"
        assert not torch.equal(ffn(x), ffn.fc2(act(ffn.fc1(x), approximate=other)))


def test_full_precision_blocks_keep_the_official_arithmetic_and_reduced_ones_fuse(monkeypatch):
    """fp32 blocks run ``x + h * g``, ``LN(x) * (1 + s) + b`` and ``normalize(q) * t`` as the official
    code; int8 blocks run the fused forms (and the erf GELU), equal up to rounding."""
    from aar.nn import block as blocks

    torch.manual_seed(0)
    block = blocks.AdaLNBlock(32, 2, 64, 1e-6, 4.6).eval()
    x, cond = torch.randn(2, 5, 32), torch.randn(2, 32)
    F = torch.nn.functional
    with torch.no_grad():
        g1, g2, s1, s2, b1, b2 = block.ada_lin(cond).unsqueeze(1).chunk(6, dim=-1)
        attn, eps = block.attn, block.norm_eps
        bias = torch.cat((attn.q_bias, torch.zeros(32), attn.v_bias))
        qkv = attn.mat_qkv(F.layer_norm(x, (32,), eps=eps) * (1 + s1) + b1, bias)
        q, k, v = qkv.view(2, 5, 3, 2, 16).permute(2, 0, 3, 1, 4).unbind(0)
        q = F.normalize(q, dim=-1) * attn.scale_mul_1H11.clamp_max(4.6).exp()
        out = F.scaled_dot_product_attention(q, F.normalize(k, dim=-1), v, scale=1.0)
        h = x + attn.proj(out.transpose(1, 2).reshape(2, 5, 32)) * g1
        official = h + block.ffn(F.layer_norm(h, (32,), eps=eps) * (1 + s2) + b2) * g2
        assert torch.equal(block(x, cond), official)
        for name in ("attn.mat_qkv", "attn.proj", "ffn.fc1", "ffn.fc2"):
            parent, _, child = name.rpartition(".")
            int8_layer = Int8Linear.from_float(block.get_submodule(name), emulate=True)
            setattr(block.get_submodule(parent), child, int8_layer)
        plain = block(x, cond)  # int8 products through the official elementwise arithmetic
        block.__class__, block.attn.__class__ = FusedAdaLNBlock, FusedCosineSelfAttention
        fused = block(x, cond)
    assert 0 < (fused - plain).abs().max() < 0.01 and (fused - official).abs().max() < 0.1


def test_int8_quantizes_adaln_but_not_the_head():
    torch.manual_seed(0)
    config = AARConfig(depth=2, embed_dim=64, num_heads=1, latent_dim=8, codebook_size=256)
    gen = precision.apply_precision(AARGenerator(config, SATTokenizer(TINY_SAT)).eval(), "int8", emulate=True)
    model = gen.transformer
    assert all(isinstance(block.ada_lin[1], Int8Linear) for block in model.blocks)
    assert isinstance(model.head_nm.ada_lin[1], Int8Linear) and type(model.head) is Linear
    assert type(model.word_embed) is Linear and len(int8_modules(model)) == 5 * config.depth + 1
    precision.apply_precision(gen, "fp32")
    assert int8_modules(model) == []


def test_int8_logits_of_a_row_do_not_depend_on_its_batch_mates(low):
    """Per-row activation scales, exact integer sums, and the float32 layers around them run request
    by request (``groups``): a row's teacher-forced int8 logits are the same bits alone and in a batch
    of 4 (one scale per tensor gave 0.24 on the fixture; per-row scales alone left 0.0075)."""
    gen = torch.Generator().manual_seed(0)
    codes = [torch.randint(0, low.config.codebook_size, (4, s), generator=gen) for s in low.config.scales]
    clap = torch.nn.functional.normalize(torch.randn(4, 512, generator=gen), dim=1)
    batch = low.logits(codes, clap)
    for row in (0, 3):
        alone = low.logits([c[row:row + 1] for c in codes], clap[row:row + 1])
        assert torch.equal(batch[row:row + 1], alone)


@pytest.mark.parametrize("name", ["fp32", "bf16", "int8"])
def test_a_batch_draws_what_its_single_calls_draw(ref, name):
    """With one seed (or generator) per row, each row of a guided batch draws its single call's tokens
    in every precision: each request's float products run apart (``aar.nn.linear``), int8 products
    are exact, everything else computes row by row. (Before, on this fixture with 4 rows, 0, 17 and
    1 of 1820 tokens differed in fp32, bf16 and int8.)"""
    gen = ref if name == "fp32" else precision.apply_precision(copy.deepcopy(ref), name)
    clap = torch.randn(3, 512, generator=torch.Generator().manual_seed(3))
    clap = clap / clap.norm(dim=1, keepdim=True)
    seeds = [11, 12, 13]
    if name == "fp32":
        batch = gen.generate_codes(clap, generator=[torch.Generator().manual_seed(s) for s in seeds], cfg=4.0)
    else:
        batch = gen.generate_codes(clap, seed=seeds, cfg=4.0)
    for b, seed in enumerate(seeds):
        alone = gen.generate_codes(clap[b:b + 1], seed=seed, cfg=4.0)
        assert alone.equal([c[b:b + 1] for c in batch]), f"row {b}"
