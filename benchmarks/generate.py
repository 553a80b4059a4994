"""Generation speed: seconds of compute per generated second, by batch size, cfg and precision.

    python benchmarks/generate.py                              # released sizes, batch 1..16, fp32
    python benchmarks/generate.py --precision fp32,bf16,int8   # side by side, with the official loop
    python benchmarks/generate.py --quick                      # released sizes, batch 1, 4, 16; 1 run
    python benchmarks/generate.py --tiny                       # a tiny model (for tests)

The models have random weights of the released sizes (``SATConfig()`` = SAT_d128_lat128,
``AARConfig()`` = AAR_d16_bs2048): speed does not depend on the weights. One run is one
``gen.generate(clap_BD, cfg=..., seed=0)`` call: the 16 transformer steps and the decode to audio of
B one-second windows. With cfg (4.0, the official default) each step runs a batch of 2B (conditional
and unconditional); ``cfg=0`` runs B. Sampling keeps top-k 200, top-p 0.95. Each precision is
``aar.precision.apply_precision`` on the same float32 weights (bf16: bfloat16 matrix weights; int8:
int8 attention and FFN products); the tokenizer stays float32. The plain loop of the official kind
(below), followed by the decode, is timed at every point as ``official`` (float32). For every
precision other than fp32 the JSON holds its accuracy against fp32 on codes fp32 sampled (mean KL
per token, top-1 agreement, max logit error, log-likelihood) and greedy generation's audio error,
three times: on the random weights (nearly flat logits), on the same weights with the head scaled so
that fp32's mean entropy per token equals that of the trained-like test fixture (logits as peaked as
a trained model's), and on the fixture itself (``tests/fixtures/official_small``, teacher forcing on
the codes the official code sampled).
``--pooled`` also times every batch above 1 with each product over the whole batch (``NAME pooled``),
as aar multiplied before it computed each request apart (``groups``, ``aar.nn.linear``): what batch
invariance costs. ``--kernels`` times one linear layer of the model's width per precision by rows per
product, with torchao's int8 dynamic quantization beside aar's int8 where torchao is installed.
``--spread SECONDS`` then lets the last precision listed and the official-kind loop take turns
(batch 1, cfg 4) for that long, and reports best, median and worst of each and of their ratio: on
a shared machine the load moves both. ``--profile`` lists the operators that take the time of one
such generation in the last precision listed.

A plain loop of the official kind (``baseline``: per scale, every block recomputes its AdaLN
parameters and concatenates its KV cache, as the reference code does) runs at batch 1 with cfg,
float32, and must give the same tokens as the library's fp32. ``--compile`` also times
``torch.compile`` on its best case, the teacher-forced pass over a window (fixed shapes, one graph).
The table goes to stdout; the last line is one JSON object.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import sys
import time

import torch
import torch.nn.functional as F
from _common import (
    RELEASED,
    build_generator,
    clap_vectors,
    emit,
    machine,
    parser,
    setup,
    table,
    timed,
)
from _spread import operator_profile, spread

from aar.generation.sampling import cfg_mix, guidance_scale, make_generator, sample
from aar.nn.linear import Linear
from aar.precision.int8 import Int8Weight, rounding_bound
from aar.precision.policy import PRECISIONS, apply_precision, auto_precision, measured_speedups

CFG = 4.0


def _ln(x_BlC, scale_B1C, shift_B1C, eps: float):
    return F.layer_norm(x_BlC, x_BlC.shape[-1:], eps=eps) * (1 + scale_B1C) + shift_B1C


def official_block(block, x_BlC, cond_BC, past):
    """One block as the reference code runs it: AdaLN parameters recomputed, the cache concatenated.

    Returns the output (B, l, C) and the keys and values of every token seen, each (B, H, L_seen, c).
    """
    attn = block.attn
    g1, g2, s1, s2, b1, b2 = block.ada_lin(cond_BC).unsqueeze(1).chunk(6, dim=-1)  # each (B, 1, C)
    h_BlC = _ln(x_BlC, s1, b1, block.norm_eps)
    B, l, C = h_BlC.shape
    bias = torch.cat((attn.q_bias, torch.zeros_like(attn.q_bias), attn.v_bias))
    qkv = attn.mat_qkv(h_BlC, bias).view(B, l, 3, attn.num_heads, -1)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, l, c)
    q = F.normalize(q, dim=-1) * attn.scale_mul_1H11.clamp_max(attn.max_scale_mul).exp()
    k = F.normalize(k, dim=-1)
    if past is not None:
        k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)  # (B, H, L_seen, c)
    out = F.scaled_dot_product_attention(q, k, v, scale=1.0).transpose(1, 2).reshape(B, l, C)
    x_BlC = x_BlC + attn.proj(out) * g1
    x_BlC = x_BlC + block.ffn(_ln(x_BlC, s2, b2, block.norm_eps)) * g2
    return x_BlC, (k, v)


@torch.no_grad()
def baseline_codes(gen, clap_BD, cfg: float, knobs: dict, seed: int) -> list[torch.Tensor]:
    """The reference loop, written plainly: tokens (B, s_i) of every scale."""
    model, quantizer, S = gen.transformer, gen.tokenizer.quantizer, gen.config.num_scales
    B = clap_BD.shape[0]
    rng = make_generator(seed)
    cond_2BC = model.condition(torch.cat([clap_BD, model.uncond_clap(B)]))
    f_BEF = clap_BD.new_zeros(B, gen.config.latent_dim, quantizer.frames)
    past = [None] * len(model.blocks)
    x_2BlC, levels = cond_2BC.unsqueeze(1) + model.pos_start, []
    for si, (start, end) in enumerate(model.scale_bounds):
        x_2BlC = x_2BlC + model.lvl_embed(model.level_L[start:end]) + model.pos_1LC[:, start:end]
        for i, block in enumerate(model.blocks):
            x_2BlC, past[i] = official_block(block, x_2BlC, cond_2BC, past[i])
        logits_2BlV = model.head(model.head_nm(x_2BlC, cond_2BC)).float()
        guided = cfg_mix(logits_2BlV[:B], logits_2BlV[B:], guidance_scale(cfg, si, S))
        idx_Bl = sample(guided, generator=rng, **knobs)
        levels.append(idx_Bl)
        f_BEF = f_BEF + quantizer.scale_residual(si, idx_Bl)
        if si + 1 < S:
            x_BlE = model.word_embed(quantizer.next_scale_input(f_BEF, si + 1))
            x_2BlC = torch.cat([x_BlE, x_BlE])
    return levels


@torch.no_grad()
def accuracy(ref, low, batch: int = 2) -> dict:
    """``low`` (another precision) against ``ref`` (fp32) on the same weights.

    Teacher forcing on tokens that ``ref`` sampled (cfg 4, top-k 200, top-p 0.95): mean KL(ref || low)
    per token, agreement of the argmax, max abs error of the logits, and the mean log-likelihood of
    the sampled tokens under each. Greedy generation (cfg 4, top-k 1): token agreement per scale and
    the max abs error of the audio.
    """
    clap = clap_vectors(batch, seed=1)
    codes = ref.generate_codes(clap, cfg=CFG, seed=0, top_k=min(200, ref.config.codebook_size), top_p=0.95)
    a, b = ref.logits(codes, clap), low.logits(codes, clap)
    log_a, log_b = a.log_softmax(-1), b.log_softmax(-1)
    idx = torch.cat([c.reshape(batch, -1) for c in codes], dim=1).unsqueeze(-1)
    greedy = dict(cfg=CFG, top_k=1, top_p=None)
    ref_codes, low_codes = ref.generate_codes(clap, **greedy), low.generate_codes(clap, **greedy)
    ref_audio, low_audio = ref.tokenizer.decode(ref_codes), low.tokenizer.decode(low_codes)
    return {
        "conditions": batch,
        "mean_kl_nats": float((log_a.exp() * (log_a - log_b)).sum(-1).mean()),
        "top1_agreement": round(float((a.argmax(-1) == b.argmax(-1)).float().mean()), 5),
        "logits_max_abs_err": round(float((a - b).abs().max()), 5),
        "logits_abs_max": round(float(a.abs().max()), 3),
        "loglik_fp32": round(float(log_a.gather(-1, idx).mean()), 5),
        "loglik_fast": round(float(log_b.gather(-1, idx).mean()), 5),
        "greedy_token_agreement": [round(float((x == y).float().mean()), 4)
                                   for x, y in zip(ref_codes, low_codes)],
        "greedy_audio_max_abs_err": round(float((ref_audio - low_audio).abs().max()), 5),
        "greedy_audio_rms": round(float(ref_audio.pow(2).mean().sqrt()), 5),
    }


def entropy(logits_BLV: torch.Tensor) -> float:
    """Mean entropy per token, nats."""
    log_p = logits_BLV.float().log_softmax(-1)
    return float(-(log_p.exp() * log_p).sum(-1).mean())


@torch.no_grad()
def sharpened(ref, target: float):
    """A copy of ``ref`` whose head is scaled so that its mean entropy per token is ``target`` nats.

    Scaling the head's weight and bias scales the logits, so the factor is found by bisection on
    logits computed once (teacher forcing on codes ``ref`` sampled).

    Returns:
        ``(model, factor, reached)``: ``reached`` is False where no factor in [0.01, 1000] gives
        ``target`` (a codebook so small that even flat logits are more peaked).
    """
    clap = clap_vectors(2, seed=1)
    codes = ref.generate_codes(clap, cfg=CFG, seed=0, top_k=min(200, ref.config.codebook_size), top_p=0.95)
    logits = ref.logits(codes, clap)
    lo, hi = 1e-2, 1e3
    for _ in range(60):  # entropy falls as the factor grows
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if entropy(logits * mid) > target else (lo, mid)
    factor = (lo * hi) ** 0.5
    reached = abs(entropy(logits * factor) - target) < 0.01
    sharp = copy.deepcopy(ref)
    head = sharp.transformer.head
    head.weight.mul_(factor)
    if head.bias is not None:
        head.bias.mul_(factor)
    return sharp, factor, reached


@torch.no_grad()
def fixture_accuracy(precisions: list[str]) -> dict:
    """Teacher-forced accuracy of each precision against fp32 on the trained-like test fixture."""
    from conftest import AAR_PTH, SAT_PTH
    from safetensors.torch import load_file

    from aar import AARGenerator

    ref = AARGenerator.from_pretrained(AAR_PTH, tokenizer=SAT_PTH)
    reference = load_file(AAR_PTH.parent / "reference.safetensors")
    codes, clap = [reference[f"codes.{i}"][:, 0] for i in range(16)], reference["clap"]
    a = ref.logits(codes, clap)
    out = {"fp32_entropy_nats": round(entropy(a), 4), "logits_abs_max": round(float(a.abs().max()), 3)}
    for name in precisions:
        if name == "fp32":
            continue
        b = apply_precision(copy.deepcopy(ref), name).logits(codes, clap)
        log_a, log_b = a.log_softmax(-1), b.log_softmax(-1)
        out[name] = {"mean_kl_nats": float((log_a.exp() * (log_a - log_b)).sum(-1).mean()),
                     "top1_agreement": round(float((a.argmax(-1) == b.argmax(-1)).float().mean()), 5),
                     "logits_max_abs_err": round(float((a - b).abs().max()), 5)}
    return out


@contextlib.contextmanager
def pooled_products():
    """Every ``Linear`` multiplies the whole batch at once, its ``groups`` ignored (a timing variant)."""
    forward = Linear.forward

    def pooled(self, x, *args, groups: int = 1, **kwargs):
        return forward(self, x, *args[:1], **kwargs)  # args[1:] holds groups when passed by position

    Linear.forward = pooled
    try:
        yield
    finally:
        Linear.forward = forward


def pooled_run(run):
    """``run`` under ``pooled_products``."""
    def call():
        with pooled_products():
            return run()
    return call


def official_run(gen, clap_BD, cfg: float, knobs: dict) -> torch.Tensor:
    """The official-kind loop and the decode: the audio (B, 1, T) of one call."""
    return gen.tokenizer.decode(baseline_codes(gen, clap_BD, cfg, knobs, seed=0))


@torch.no_grad()
def compile_check(gen, knobs: dict, runs: int, backend: str = "inductor") -> dict:
    """``torch.compile`` on its best case: the teacher-forced pass over one window, batch 2.

    That pass does the matrix work of one generation with cfg (455 tokens, conditional and
    unconditional) in a single graph of fixed shapes; the 16 steps of generation, whose shapes change
    at every scale, can only gain less. ``--tiny`` compiles with the ``aot_eager`` backend: the same
    graph capture without inductor's C++ build (about 18 s on 2 cores), to test this code quickly.
    """
    model = gen.transformer
    clap = clap_vectors(1)
    levels = [c[:, 0] for c in gen.generate_codes(clap, cfg=CFG, seed=0, **knobs)]
    cond_2BC = model.condition(torch.cat([clap, model.uncond_clap(1)]))
    x_2BLE = gen.next_scale_inputs(levels).repeat(2, 1, 1)
    eager_out = model(cond_2BC, x_2BLE)
    compiled = torch.compile(model, backend=backend)
    start = time.perf_counter()
    compiled_out = compiled(cond_2BC, x_2BLE)
    first = time.perf_counter() - start
    eager_s, compiled_s = float("inf"), float("inf")
    for _ in range(max(runs, 3)):  # interleaved
        eager_s = min(eager_s, timed(lambda: model(cond_2BC, x_2BLE), 1))
        compiled_s = min(compiled_s, timed(lambda: compiled(cond_2BC, x_2BLE), 1))
    return {"what": "teacher-forced forward, one window, batch 2", "backend": backend,
            "first_call_s": round(first, 2),
            "eager_s": round(eager_s, 4), "compiled_s": round(compiled_s, 4),
            "speedup": round(eager_s / compiled_s, 3),
            "logits_max_abs_diff": float((compiled_out - eager_out).abs().max())}


@torch.no_grad()
def kernel_sweep(width: int, rows: list[int], runs: int) -> list[dict]:
    """One (width, 4 width) linear layer by rows per product: GFLOP/s of fp32, bf16, aar's int8
    (PyTorch's quantized dynamic kernel) and torchao's int8 dynamic quantization (when installed),
    taking turns, best of ``runs``; and each one's max abs error against fp32."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(width, 4 * width)
    low = {"bf16": layer.weight.bfloat16(), "int8": Int8Weight(layer.weight)}
    paths = {"fp32": layer, "bf16": lambda x: torch.nn.functional.linear(x.bfloat16(), low["bf16"]).float()
             + layer.bias, "int8": lambda x: low["int8"](x, layer.bias)}
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError:
        print("torchao is not installed: its int8 is not timed", file=sys.stderr)
    else:
        paths["torchao int8"] = copy.deepcopy(layer)
        quantize_(paths["torchao int8"], Int8DynamicActivationInt8WeightConfig())
    out = []
    for n in rows:
        x = torch.randn(n, width)
        best = dict.fromkeys(paths, float("inf"))
        for _ in range(runs + 1):  # the first round warms up
            for name, path in paths.items():
                best[name] = min(best[name], timed(lambda: path(x), 1))  # noqa: B023
        exact = layer(x)
        rates = {f"{k}_gflops": round(8 * n * width**2 / v / 1e9, 1) for k, v in best.items()}
        bound = rounding_bound(x, layer.weight, low["int8"].reduce_range)
        out.append({"rows": n, **rates,
                    **{f"{k}_max_abs_err": round(float((p(x) - exact).abs().max()), 5)
                       for k, p in paths.items() if k != "fp32"},
                    "int8_within_bound": bool(((low["int8"](x, layer.bias) - exact).abs() <= bound).all())})
    return out


def plot(results: list[dict], path: str) -> None:
    """Seconds per generated second against batch size, one curve per precision and cfg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r["precision"] for r in results):
        for cfg in (CFG, 0.0):
            rows = [r for r in results if (r["precision"], r["cfg"]) == (name, cfg)]
            ax.plot([r["batch"] for r in rows], [r["s_per_generated_s"] for r in rows], marker="o",
                    label=f"{name}, {'cfg 4' if cfg else 'no cfg'}")
    ax.set(xscale="log", xlabel="batch size (one-second windows per call)",
           ylabel="seconds per generated second", title="AARGenerator.generate on the CPU")
    ax.set_xticks([r["batch"] for r in results], labels=[str(r["batch"]) for r in results])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _mark_into(marks: list[float]):
    return lambda progress: marks.append(time.perf_counter())


def per_scale_times(gen, knobs: dict, runs: int) -> dict:
    """Seconds of each scale of one generation (batch 1, cfg 4) and of its decode, best of ``runs``:
    where a generated second's time goes, scale by scale."""
    best = None
    for _ in range(runs + 1):  # the first is a warm-up
        marks = [time.perf_counter()]
        codes = gen.generate_codes(clap_vectors(1), cfg=CFG, seed=0, callback=_mark_into(marks), **knobs)
        start = time.perf_counter()
        gen.tokenizer.decode(codes, batch_size=1)
        steps = [b - a for a, b in zip(marks, marks[1:])] + [time.perf_counter() - start]
        best = steps if best is None else [min(a, b) for a, b in zip(best, steps)]
    scales = list(gen.config.scales)
    return {"tokens": scales, "seconds": [round(t, 4) for t in best[:-1]], "decode_s": round(best[-1], 4)}


def precision_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PRECISIONS]
    if unknown or not names:
        raise ValueError(f"--precision takes a comma-separated list of {list(PRECISIONS)}, got {text!r}")
    return names


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__)
    p.add_argument("--precision", default="fp32", type=precision_list,
                   help="comma-separated precisions timed side by side: fp32,bf16,int8,auto (default fp32)")
    p.add_argument("--batch-sizes", help="comma-separated (default 1,2,4,8,16; quick 1,4,16)")
    p.add_argument("--runs", type=int, help="timed runs per point, best kept (default 2; 1 quick/tiny)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (teacher forcing)")
    p.add_argument("--no-baseline", action="store_true", help="skip the plain loop of the official kind")
    p.add_argument("--pooled", action="store_true",
                   help="also time batches with each product over the whole batch (what invariance costs)")
    p.add_argument("--kernels", action="store_true",
                   help="also time one linear layer per precision (and torchao's int8) by rows")
    p.add_argument("--spread", type=float, metavar="SECONDS",
                   help="also let the last precision and the official loop take turns this long")
    p.add_argument("--profile", action="store_true",
                   help="also list the operators that take the time of one generation (last precision)")
    p.add_argument("--per-scale", action="store_true",
                   help="also time each scale of one generation and its decode, per precision")
    p.add_argument("--plot", help="write a PNG of the curves here (needs matplotlib)")
    args = p.parse_args(argv)
    setup(args)
    runs = args.runs or (1 if args.quick or args.tiny else 2)
    default_sizes = "1,2" if args.tiny else "1,4,16" if args.quick else "1,2,4,8,16"
    sizes = [int(b) for b in (args.batch_sizes or default_sizes).split(",")]

    base = build_generator(args.tiny)
    knobs = dict(top_k=min(200, base.config.codebook_size), top_p=0.95)
    gens = {name: base if name == "fp32" else apply_precision(copy.deepcopy(base), name)
            for name in args.precision}
    results = []
    for batch in sizes:
        clap = clap_vectors(batch)
        for cfg in (CFG, 0.0):
            runners = {name: functools.partial(gen.generate, clap, cfg=cfg, seed=0, **knobs)
                       for name, gen in gens.items()}
            if args.pooled and batch > 1:
                runners.update({f"{name} pooled": pooled_run(run) for name, run in list(runners.items())})
            if not args.no_baseline:
                runners["official"] = functools.partial(official_run, base, clap, cfg, knobs)
            for run in runners.values():
                run()  # warm-up
            best = dict.fromkeys(runners, float("inf"))
            for _ in range(runs):  # variants take turns, so they see the same machine load
                for name, run in runners.items():
                    best[name] = min(best[name], timed(run, 1))
            for name, seconds in best.items():
                results.append({"precision": name, "cfg": cfg,
                                "batch": batch, "seconds": round(seconds, 4),
                                "s_per_generated_s": round(seconds / batch, 4)})
                print(f"{name} cfg={cfg:g} batch={batch}: {seconds:.3f} s", file=sys.stderr, flush=True)

    report = {"benchmark": "generate", "model": "tiny" if args.tiny else RELEASED, "runs": runs,
              "sampling": knobs, "results": results}
    clap = clap_vectors(1)
    if not args.no_baseline:
        library = base.generate_codes(clap, cfg=CFG, seed=0, **knobs)
        plain = baseline_codes(base, clap, CFG, knobs, seed=0)
        same = all(torch.equal(a[:, 0], b) for a, b in zip(library, plain))
        lib_s, plain_s = float("inf"), float("inf")
        for _ in range(max(runs, 3)):  # interleaved, so both see the same machine load
            lib_s = min(lib_s, timed(lambda: base.generate_codes(clap, cfg=CFG, seed=0, **knobs), 1))
            plain_s = min(plain_s, timed(lambda: baseline_codes(base, clap, CFG, knobs, seed=0), 1))
        report["baseline"] = {"batch": 1, "cfg": CFG, "precision": "fp32", "tokens_identical": same,
                              "runs": max(runs, 3), "library_tokens_s": round(lib_s, 4),
                              "baseline_tokens_s": round(plain_s, 4), "ratio": round(plain_s / lib_s, 3)}
    if args.compile:
        report["compile"] = compile_check(base, knobs, runs, "aot_eager" if args.tiny else "inductor")
    one = {r["precision"]: r["seconds"] for r in results if r["batch"] == sizes[0] and r["cfg"] == CFG}
    for against in ("fp32", "official"):
        if against in one:
            report[f"speedup_vs_{against}"] = {name: round(one[against] / s, 3) for name, s in one.items()}
    last = gens[args.precision[-1]]
    one_second = functools.partial(last.generate, clap_vectors(1), cfg=CFG, seed=0, **knobs)
    if args.spread is not None:
        official = functools.partial(official_run, base, clap_vectors(1), CFG, knobs)
        report["spread"] = {"precision": args.precision[-1], "batch": 1, "cfg": CFG, "seconds": args.spread,
                            **spread({args.precision[-1]: one_second, "official": official}, args.spread)}
    if args.profile:
        report["profile"] = {"precision": args.precision[-1], "batch": 1, "cfg": CFG,
                             "operators": operator_profile(one_second)}
    if args.per_scale:
        report["per_scale"] = {name: per_scale_times(gen, knobs, max(runs, 3)) for name, gen in gens.items()}
    if args.kernels:
        width = base.config.embed_dim
        report["kernels"] = kernel_sweep(width, [2, 16] if args.tiny else [2, 32, 150, 512], max(runs, 5))
    report["accuracy"] = {name: accuracy(base, gens[name]) for name in args.precision if name != "fp32"}
    report["accuracy_fixture"] = fixture_accuracy(args.precision)
    target = report["accuracy_fixture"]["fp32_entropy_nats"]
    sharp, factor, reached = sharpened(base, target)
    report["accuracy_sharpened"] = {
        "head_scale": round(factor, 3), "target_entropy_nats": target, "target_reached": reached,
        **{name: accuracy(sharp, apply_precision(copy.deepcopy(sharp), name))
           for name in args.precision if name != "fp32"}}
    report["machine"] = machine(args.tiny)
    report["auto_precision"] = auto_precision("cpu")
    report["measured_speedups"] = {k: round(v, 2) for k, v in measured_speedups().items()}

    print(f"seconds per generated second (best of {runs}); batch = one-second windows per call")
    table(["precision", "cfg", "batch", "seconds", "s / generated s"],
          [[r["precision"], r["cfg"], r["batch"], r["seconds"], r["s_per_generated_s"]] for r in results])
    if "baseline" in report:
        b = report["baseline"]
        print(f"tokens at batch 1 with cfg: library {b['library_tokens_s']:.3f} s, plain reference "
              f"loop {b['baseline_tokens_s']:.3f} s ({b['ratio']:.2f}x); identical tokens: "
              f"{b['tokens_identical']}")
    if "compile" in report:
        c = report["compile"]
        print(f"torch.compile ({c['backend']}), {c['what']}: {c['compiled_s']:.3f} s against eager "
              f"{c['eager_s']:.3f} s "
              f"({c['speedup']:.2f}x) after a first call of {c['first_call_s']:.1f} s")
    if "kernels" in report:
        C = base.config.embed_dim
        print(f"one Linear({C}, {4 * C}): GFLOP/s by rows per product, max abs error against fp32")
        table(list(report["kernels"][0]), [list(r.values()) for r in report["kernels"]])
    if "spread" in report:
        s = report["spread"]
        name = s["precision"]
        line = ", ".join(f"{k} best {s[k]['best']} / median {s[k]['median']} / worst {s[k]['worst']}"
                         for k in (name, "official", "ratio"))
        print(f"{name} and the official loop in turns for {s['seconds']:g} s ({s['turns']} turns, batch 1, "
              f"cfg 4), seconds per generated second and official over {name}: {line}")
    if "per_scale" in report:
        names = list(report["per_scale"])
        first = report["per_scale"][names[0]]
        print("milliseconds per scale of one generation (batch 1, cfg 4) and of its decode:")
        rows = [[k, tokens, *(round(1000 * report["per_scale"][n]["seconds"][k], 1) for n in names)]
                for k, tokens in enumerate(first["tokens"])]
        rows.append(["decode", "", *(round(1000 * report["per_scale"][n]["decode_s"], 1) for n in names)])
        table(["scale", "tokens", *names], rows)
    if "profile" in report:
        print(f"operators of one generation, {report['profile']['precision']}, batch 1, cfg 4:")
        table(["operator", "calls", "ms", "share"],
              [list(r.values()) for r in report["profile"]["operators"]])
    for against in ("official", "fp32"):
        if f"speedup_vs_{against}" in report:
            speedups = report[f"speedup_vs_{against}"]
            print(f"speed-up against {against} at batch {sizes[0]} with cfg: {speedups}")
    fixture, sharp_report = report["accuracy_fixture"], report["accuracy_sharpened"]
    for where, accs in (("random weights (flat logits)", report["accuracy"]),
                        (f"head scaled x{sharp_report['head_scale']} to the fixture's entropy "
                         f"({sharp_report['target_entropy_nats']} nats/token)", sharp_report)):
        for name in (n for n in args.precision if n != "fp32"):
            acc = accs[name]
            print(f"{name} against fp32, {where}: mean KL {acc['mean_kl_nats']:.2g} nats/token, top-1 "
                  f"agreement {acc['top1_agreement']:.2%}, logits max abs err "
                  f"{acc['logits_max_abs_err']:.4g} (logits up to {acc['logits_abs_max']}); greedy audio "
                  f"max abs err {acc['greedy_audio_max_abs_err']:.4g}")
    for name in (n for n in args.precision if n != "fp32"):
        acc = fixture[name]
        print(f"{name} against fp32, the trained-like fixture (logits up to {fixture['logits_abs_max']}): "
              f"mean KL {acc['mean_kl_nats']:.2g} nats/token, top-1 agreement {acc['top1_agreement']:.2%}, "
              f"logits max abs err {acc['logits_max_abs_err']:.4g}")
    print(f"precision='auto' picks {report['auto_precision']} on this CPU "
          f"({report['machine']['cpu']}; {', '.join(report['machine']['cpu_flags'])})")
    if args.plot:
        plot(results, args.plot)
    return emit(report)


if __name__ == "__main__":
    main()
