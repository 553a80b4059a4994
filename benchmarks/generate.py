"""Generation speed: seconds of compute per generated second, by batch size, cfg and dtype.

    python benchmarks/generate.py                          # released sizes, batch 1..16, float32
    python benchmarks/generate.py --dtype float32 bfloat16 # float32 against bfloat16, side by side
    python benchmarks/generate.py --quick                  # released sizes, batch 1, 4, 16; 1 run
    python benchmarks/generate.py --tiny                   # a tiny model (for tests)

The models have random weights of the released sizes (``SATConfig()`` = SAT_d128_lat128,
``AARConfig()`` = AAR_d16_bs2048): speed does not depend on the weights. One run is one
``gen.generate(clap_BD, cfg=..., seed=0)`` call: the 16 transformer steps and the decode to audio of
B one-second windows. With cfg (4.0, the official default) each step runs a batch of 2B (conditional
and unconditional); ``cfg=0`` runs B. Sampling keeps top-k 200, top-p 0.95. bfloat16 casts the
transformer's matrix weights (``gen.to(dtype=torch.bfloat16)``); the tokenizer stays float32.
``--packed`` also times each dtype with ``gen.pack_weights()`` (oneDNN-packed weights), interleaved
with the unpacked runs, and checks the packed tokens against the unpacked ones. ``--rows-sweep``
times the per-step layers alone, packed against unpacked, by rows per product (the measurement
behind ``aar.nn.linear.PACKED_MAX_ROWS``).

A plain loop of the official kind (``baseline``: per scale, every block recomputes its AdaLN
parameters and concatenates its KV cache, as the reference code does) runs at batch 1 with cfg,
float32, and must give the same tokens. ``--compile`` also times ``torch.compile`` on its best case,
the teacher-forced pass over a window (fixed shapes, one graph). The table goes to stdout; the last
line is one JSON object.
"""

from __future__ import annotations

import copy
import functools
import sys
import time

import torch
import torch.nn.functional as F
from _common import (
    DTYPES,
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

from aar.sampling import cfg_mix, guidance_scale, make_generator, sample

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
    """``low`` (reduced precision) against ``ref`` (float32) on the same weights.

    Teacher forcing on tokens that ``ref`` sampled: max abs error of the logits and agreement of
    their argmax over the L positions. Greedy generation (cfg 4, top-k 1): token agreement per
    scale and the max abs error of the audio.
    """
    clap = clap_vectors(batch, seed=1)
    codes = ref.generate_codes(clap, cfg=CFG, seed=0, top_k=min(200, ref.config.codebook_size), top_p=0.95)
    a, b = ref.logits(codes, clap), low.logits(codes, clap)
    greedy = dict(cfg=CFG, top_k=1, top_p=None)
    ref_codes, low_codes = ref.generate_codes(clap, **greedy), low.generate_codes(clap, **greedy)
    ref_audio, low_audio = ref.tokenizer.decode(ref_codes), low.tokenizer.decode(low_codes)
    return {
        "conditions": batch,
        "logits_max_abs_err": round(float((a - b).abs().max()), 5),
        "logits_abs_max": round(float(a.abs().max()), 3),
        "top1_agreement": round(float((a.argmax(-1) == b.argmax(-1)).float().mean()), 5),
        "greedy_token_agreement": [round(float((x == y).float().mean()), 4)
                                   for x, y in zip(ref_codes, low_codes)],
        "greedy_audio_max_abs_err": round(float((ref_audio - low_audio).abs().max()), 5),
        "greedy_audio_rms": round(float(ref_audio.pow(2).mean().sqrt()), 5),
    }


@torch.no_grad()
def compile_check(gen, knobs: dict, runs: int) -> dict:
    """``torch.compile`` on its best case: the teacher-forced pass over one window, batch 2.

    That pass does the matrix work of one generation with cfg (455 tokens, conditional and
    unconditional) in a single graph of fixed shapes; the 16 steps of generation, whose shapes change
    at every scale, can only gain less.
    """
    model = gen.transformer
    clap = clap_vectors(1)
    levels = [c[:, 0] for c in gen.generate_codes(clap, cfg=CFG, seed=0, **knobs)]
    cond_2BC = model.condition(torch.cat([clap, model.uncond_clap(1)]))
    x_2BLE = gen.next_scale_inputs(levels).repeat(2, 1, 1)
    eager_out = model(cond_2BC, x_2BLE)
    compiled = torch.compile(model)
    start = time.perf_counter()
    compiled_out = compiled(cond_2BC, x_2BLE)
    first = time.perf_counter() - start
    eager_s, compiled_s = float("inf"), float("inf")
    for _ in range(max(runs, 3)):  # interleaved
        eager_s = min(eager_s, timed(lambda: model(cond_2BC, x_2BLE), 1))
        compiled_s = min(compiled_s, timed(lambda: compiled(cond_2BC, x_2BLE), 1))
    return {"what": "teacher-forced forward, one window, batch 2", "first_call_s": round(first, 2),
            "eager_s": round(eager_s, 4), "compiled_s": round(compiled_s, 4),
            "speedup": round(eager_s / compiled_s, 3),
            "logits_max_abs_diff": float((compiled_out - eager_out).abs().max())}


@torch.no_grad()
def packed_check(base, packed, one: dict, sizes: list[int], knobs: dict, seeds: int = 3) -> dict:
    """Packed float32 weights against unpacked: speed-up (from the table) and agreement.

    The logits are compared at batch 1 (455 rows per product, within ``PACKED_MAX_ROWS``, so the
    packed weights serve them); the tokens of ``seeds`` generations of batch 2.
    """
    clap = clap_vectors(2, seed=1)
    codes = base.generate_codes(clap[:1], cfg=CFG, seed=0, **knobs)
    diff = (base.logits(codes, clap[:1]) - packed.logits(codes, clap[:1])).abs().max()
    same = all(
        all(torch.equal(a, b) for a, b in zip(base.generate_codes(clap, cfg=CFG, seed=s, **knobs),
                                                packed.generate_codes(clap, cfg=CFG, seed=s, **knobs)))
        for s in range(seeds)
    )
    return {"batch": sizes[0], "cfg": CFG, "speedup": round(one["float32", False] / one["float32", True], 3),
            "logits_max_abs_diff": float(diff), "seeds": seeds, "tokens_identical": same}


@torch.no_grad()
def rows_sweep(gen, rows: list[int], runs: int) -> list[dict]:
    """Every per-step layer of the transformer (``step_layers``) on inputs of ``rows`` rows, unpacked
    against packed, taking turns: where packing stops paying (``aar.nn.linear.PACKED_MAX_ROWS``)."""
    layers = gen.transformer.step_layers()
    packed = [copy.deepcopy(layer) for layer in layers]
    for layer in packed:
        layer.pack()
    out = []
    for n in rows:
        xs = [torch.randn(n, layer.in_features) for layer in layers]
        def plain_run(xs=xs):
            return [layer(x) for layer, x in zip(layers, xs)]

        def packed_run(xs=xs):
            return [layer._packed_forward(x, layer.bias) for layer, x in zip(packed, xs)]

        plain_run(), packed_run()  # warm-up
        plain_s = packed_s = float("inf")
        for _ in range(max(runs, 3)):
            plain_s = min(plain_s, timed(plain_run, 1))
            packed_s = min(packed_s, timed(packed_run, 1))
        out.append({"rows": n, "plain_ms": round(plain_s * 1e3, 2), "packed_ms": round(packed_s * 1e3, 2),
                    "speedup": round(plain_s / packed_s, 3)})
        print(f"{n} rows: {plain_s * 1e3:.1f} ms unpacked, {packed_s * 1e3:.1f} ms packed",
              file=sys.stderr, flush=True)
    return out


def plot(results: list[dict], path: str) -> None:
    """Seconds per generated second against batch size, one curve per dtype, packing and cfg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for dtype, packed in dict.fromkeys((r["dtype"], r["packed"]) for r in results):
        for cfg in (CFG, 0.0):
            rows = [r for r in results if (r["dtype"], r["packed"], r["cfg"]) == (dtype, packed, cfg)]
            ax.plot([r["batch"] for r in rows], [r["s_per_generated_s"] for r in rows], marker="o",
                    label=f"{dtype}{' packed' if packed else ''}, {'cfg 4' if cfg else 'no cfg'}")
    ax.set(xscale="log", xlabel="batch size (one-second windows per call)",
           ylabel="seconds per generated second", title="AARGenerator.generate on the CPU")
    ax.set_xticks([r["batch"] for r in results], labels=[str(r["batch"]) for r in results])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__)
    p.add_argument("--dtype", nargs="+", default=["float32"], choices=sorted(DTYPES),
                   help="transformer weight dtype(s), timed side by side (default float32)")
    p.add_argument("--batch-sizes", help="comma-separated (default 1,2,4,8,16; quick 1,4,16)")
    p.add_argument("--runs", type=int, help="timed runs per point, best kept (default 2; 1 quick/tiny)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (teacher forcing)")
    p.add_argument("--packed", action="store_true",
                   help="also time each dtype with packed weights (gen.pack_weights())")
    p.add_argument("--rows-sweep", action="store_true",
                   help="time every per-step layer packed and unpacked by rows per product")
    p.add_argument("--no-baseline", action="store_true", help="skip the plain reference loop")
    p.add_argument("--plot", help="write a PNG of the curves here (needs matplotlib)")
    args = p.parse_args(argv)
    setup(args)
    runs = args.runs or (1 if args.quick or args.tiny else 2)
    default_sizes = "1,2" if args.tiny else "1,4,16" if args.quick else "1,2,4,8,16"
    sizes = [int(b) for b in (args.batch_sizes or default_sizes).split(",")]

    base = build_generator(args.tiny)
    knobs = dict(top_k=min(200, base.config.codebook_size), top_p=0.95)
    gens = {name: base if name == "float32" else copy.deepcopy(base).to(dtype=DTYPES[name])
            for name in args.dtype}
    if args.packed:
        gens.update({f"{name} packed": copy.deepcopy(gen).pack_weights() for name, gen in list(gens.items())})
    results = []
    for batch in sizes:
        clap = clap_vectors(batch)
        for cfg in (CFG, 0.0):
            runners = {name: functools.partial(gen.generate, clap, cfg=cfg, seed=0, **knobs)
                       for name, gen in gens.items()}
            for run in runners.values():
                run()  # warm-up
            best = dict.fromkeys(runners, float("inf"))
            for _ in range(runs):  # variants take turns, so they see the same machine load
                for name, run in runners.items():
                    best[name] = min(best[name], timed(run, 1))
            for name, seconds in best.items():
                results.append({"dtype": name.split()[0], "packed": name.endswith("packed"), "cfg": cfg,
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
        report["baseline"] = {"batch": 1, "cfg": CFG, "dtype": "float32", "tokens_identical": same,
                              "runs": max(runs, 3), "library_tokens_s": round(lib_s, 4),
                              "baseline_tokens_s": round(plain_s, 4), "ratio": round(plain_s / lib_s, 3)}
    if args.compile:
        report["compile"] = compile_check(base, knobs, runs)
    if args.rows_sweep:
        rows = [2, 16, 64] if args.tiny else [2, 16, 64, 150, 300, 450, 600, 900, 1200]
        report["rows_sweep"] = rows_sweep(base, rows, runs)
    one = {(r["dtype"], r["packed"]): r["seconds"] for r in results
           if r["batch"] == sizes[0] and r["cfg"] == CFG}
    if {("float32", False), ("bfloat16", False)} <= set(one):
        report["bfloat16_speedup"] = round(one["float32", False] / one["bfloat16", False], 3)
    if args.packed and "float32" in gens:
        report["packed"] = packed_check(base, gens["float32 packed"], one, sizes, knobs)
    if "bfloat16" in gens:
        report["bfloat16_accuracy"] = accuracy(base, gens["bfloat16"])
    report["machine"] = machine(args.tiny)

    print(f"seconds per generated second (best of {runs}); batch = one-second windows per call")
    table(["dtype", "packed", "cfg", "batch", "seconds", "s / generated s"],
          [[r["dtype"], "yes" if r["packed"] else "no", r["cfg"], r["batch"], r["seconds"],
            r["s_per_generated_s"]] for r in results])
    if "baseline" in report:
        b = report["baseline"]
        print(f"tokens at batch 1 with cfg: library {b['library_tokens_s']:.3f} s, plain reference "
              f"loop {b['baseline_tokens_s']:.3f} s ({b['ratio']:.2f}x); identical tokens: "
              f"{b['tokens_identical']}")
    if "compile" in report:
        c = report["compile"]
        print(f"torch.compile, {c['what']}: {c['compiled_s']:.3f} s against eager {c['eager_s']:.3f} s "
              f"({c['speedup']:.2f}x) after a first call of {c['first_call_s']:.1f} s")
    if "rows_sweep" in report:
        print("per-step layers by rows per product (ms, best of 3 or more, taking turns)")
        table(["rows", "unpacked ms", "packed ms", "speedup"],
              [[r["rows"], r["plain_ms"], r["packed_ms"], r["speedup"]] for r in report["rows_sweep"]])
    if "packed" in report:
        k = report["packed"]
        print(f"packed weights against unpacked at batch {sizes[0]} with cfg, float32: "
              f"{k['speedup']:.2f}x; teacher-forced logits max abs diff {k['logits_max_abs_diff']:.2g}; "
              f"identical tokens for seeds 0-{k['seeds'] - 1}: {k['tokens_identical']}")
    if "bfloat16_speedup" in report:
        print(f"bfloat16 against float32 at batch {sizes[0]} with cfg: {report['bfloat16_speedup']:.2f}x")
    if "bfloat16_accuracy" in report:
        acc = report["bfloat16_accuracy"]
        print(f"bfloat16 accuracy: teacher-forced logits max abs err {acc['logits_max_abs_err']:.4g}, "
              f"top-1 agreement {acc['top1_agreement']:.2%}; greedy audio max abs err "
              f"{acc['greedy_audio_max_abs_err']:.4g}")
    if args.plot:
        plot(results, args.plot)
    return emit(report)


if __name__ == "__main__":
    main()
