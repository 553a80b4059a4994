"""Next-scale versus next-token decoding of one second of tokens with the same transformer weights.

    python benchmarks/next_scale_vs_next_token.py            # released sizes, 3 interleaved runs each
    python benchmarks/next_scale_vs_next_token.py --quick    # released sizes, 1 run each (< 2 min)
    python benchmarks/next_scale_vs_next_token.py --tiny     # a tiny model (for tests)

Both decoders run the blocks of one ``AARTransformer`` with random weights of the released size
(``AARConfig()`` = AAR_d16_bs2048), on a batch of 2 (conditional and unconditional: cfg 4, top-k 200,
top-p 0.95), in float32:

- next-scale: ``AARGenerator.generate_codes``, 16 steps, each a whole scale against the KV cache;
- next-token: 455 steps of one token each, in raster order over the same scales (scale by scale,
  position by position). Step j attends to tokens 0..j through a preallocated KV cache; its input is
  the codebook vector of token j - 1 through ``word_embed``, plus the position and level embeddings.
  The AdaLN parameters depend on the condition only and are computed once. The weights were not
  trained for this order: the benchmark measures cost, not quality.

Only token generation is timed; decoding the tokens to audio is the same for both and is timed apart.
The table goes to stdout; the last line is one JSON object (``speedup`` = next-token / next-scale).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from _common import RELEASED, build_generator, clap_vectors, emit, machine, parser, setup, table

from aar.generation.sampling import cfg_mix, guidance_scale, make_generator, sample


def _norm(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, eps: float) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], eps=eps) * (1 + scale) + shift


def _adaln(ada_lin: torch.nn.Sequential, cond_2BC: torch.Tensor, parts: int) -> tuple:
    return ada_lin(cond_2BC).unsqueeze(1).chunk(parts, dim=-1)  # each (2B, 1, C)


class NextTokenDecoder:
    """One token per step over the transformer's blocks, with a preallocated KV cache."""

    def __init__(self, gen) -> None:
        self.model, self.quantizer = gen.transformer, gen.tokenizer.quantizer
        c = self.model.config
        self.S, self.L, self.H, self.eps = c.num_scales, c.tokens_per_window, c.num_heads, c.norm_eps
        self.qkv_bias = [
            torch.cat((b.attn.q_bias, torch.zeros_like(b.attn.q_bias), b.attn.v_bias))
            for b in self.model.blocks
        ]
        self.temperature = [
            b.attn.scale_mul_1H11.clamp_max(b.attn.max_scale_mul).exp() for b in self.model.blocks
        ]

    def _embed(self, x_2B1C: torch.Tensor, j: int) -> torch.Tensor:
        level = self.model.level_L[j : j + 1]
        return x_2B1C + self.model.lvl_embed(level) + self.model.pos_1LC[:, j : j + 1]

    def _attend(self, i: int, x_2B1C: torch.Tensor, kv: torch.Tensor, j: int) -> torch.Tensor:
        attn = self.model.blocks[i].attn
        B2, _, C = x_2B1C.shape
        qkv = F.linear(x_2B1C, attn.mat_qkv.weight, self.qkv_bias[i]).view(B2, 1, 3, self.H, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (2B, H, 1, c)
        q = F.normalize(q, dim=-1) * self.temperature[i]
        kv[0, :, :, j : j + 1] = F.normalize(k, dim=-1)
        kv[1, :, :, j : j + 1] = v
        out = F.scaled_dot_product_attention(q, kv[0, :, :, : j + 1], kv[1, :, :, : j + 1], scale=1.0)
        return attn.proj(out.transpose(1, 2).reshape(B2, 1, C))

    @torch.no_grad()
    def generate(self, clap_BD, cfg, knobs, seed, tokens=None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Tokens (B, 1) of the first ``tokens`` positions (default all L), and the logits of step 0."""
        model, B = self.model, clap_BD.shape[0]
        rng = make_generator(seed)
        cond_2BC = model.condition(torch.cat([clap_BD, model.uncond_clap(B)]))
        mods = [_adaln(b.ada_lin, cond_2BC, 6) for b in model.blocks]
        head_scale, head_shift = _adaln(model.head_nm.ada_lin, cond_2BC, 2)
        c = model.config.head_dim
        caches = [cond_2BC.new_empty(2, 2 * B, self.H, self.L, c) for _ in model.blocks]  # (2, 2B, H, L, c)
        x_2B1C = self._embed(cond_2BC.unsqueeze(1) + model.pos_start, 0)
        out, first = [], None
        for j in range(tokens or self.L):
            for i, block in enumerate(model.blocks):
                g1, g2, s1, s2, b1, b2 = mods[i]
                x_2B1C = x_2B1C + self._attend(i, _norm(x_2B1C, s1, b1, self.eps), caches[i], j) * g1
                x_2B1C = x_2B1C + block.ffn(_norm(x_2B1C, s2, b2, self.eps)) * g2
            logits_2B1V = model.head(_norm(x_2B1C, head_scale, head_shift, self.eps)).float()
            first = logits_2B1V if first is None else first
            si = int(model.level_L[j])
            guided = cfg_mix(logits_2B1V[:B], logits_2B1V[B:], guidance_scale(cfg, si, self.S))
            idx_B1 = sample(guided, generator=rng, **knobs)
            out.append(idx_B1)
            if j + 1 < self.L:
                e_B1E = self.quantizer.codebooks[si](idx_B1)
                x_2B1C = self._embed(model.word_embed(torch.cat([e_B1E, e_B1E])), j + 1)
        return out, first


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__)
    p.add_argument("--batch", type=int, default=1, help="conditions per run (default 1)")
    p.add_argument("--runs", type=int, help="timed runs of each decoder (default 3; 1 quick/tiny)")
    args = p.parse_args(argv)
    setup(args)
    torch.set_grad_enabled(False)
    runs = args.runs or (1 if args.quick or args.tiny else 3)

    gen = build_generator(args.tiny)
    V, S, L = gen.config.codebook_size, gen.config.num_scales, gen.config.tokens_per_window
    clap = clap_vectors(args.batch)
    cfg, knobs = 4.0, dict(top_k=min(200, V), top_p=0.95)
    decoder = NextTokenDecoder(gen)

    # Same weights, same first step: the start token's logits must agree between the two decoders.
    with gen.transformer.kv_cache() as cache:
        cond = gen.transformer.condition(torch.cat([clap, gen.transformer.uncond_clap(args.batch)]))
        step0 = gen.transformer.step(cache, cond, 0).float()
    _, first = decoder.generate(clap, cfg, knobs, seed=0, tokens=1)
    first_diff = float((first - step0).abs().max())

    gen.generate_codes(clap, cfg=cfg, seed=0, **knobs)  # warm-up
    decoder.generate(clap, cfg, knobs, seed=0, tokens=min(L, 20))
    scale_s, token_s = [], []
    for _ in range(runs):  # interleaved, so both see the same machine load
        start = time.perf_counter()
        codes = gen.generate_codes(clap, cfg=cfg, seed=0, **knobs)
        scale_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        tokens, _ = decoder.generate(clap, cfg, knobs, seed=0)
        token_s.append(time.perf_counter() - start)
    start = time.perf_counter()
    gen.tokenizer.decode(codes)
    decode_s = time.perf_counter() - start
    assert len(tokens) == L and sum(c.shape[-1] for c in codes) == L

    ns, nt = min(scale_s), min(token_s)
    report = {
        "benchmark": "next_scale_vs_next_token",
        "model": "tiny" if args.tiny else RELEASED,
        "batch": args.batch, "cfg": cfg, "sampling": knobs, "runs": runs, "dtype": "float32",
        "tokens": L,
        "next_scale": {"steps": S, "seconds": round(ns, 4), "ms_per_step": round(1000 * ns / S, 2),
                       "all_seconds": [round(t, 4) for t in scale_s]},
        "next_token": {"steps": L, "seconds": round(nt, 4), "ms_per_step": round(1000 * nt / L, 2),
                       "all_seconds": [round(t, 4) for t in token_s]},
        "speedup": round(nt / ns, 2),
        "decode_seconds": round(decode_s, 4),
        "first_step_logits_max_abs_diff": first_diff,
        "machine": machine(args.tiny),
    }
    print(f"one second of tokens ({L}), batch {args.batch} (x2 with cfg), best of {runs}")
    table(["decoder", "steps", "seconds", "ms/step"], [
        ["next-scale", S, ns, 1000 * ns / S],
        ["next-token", L, nt, 1000 * nt / L],
    ])
    print(f"speedup {nt / ns:.1f}x; decoding the tokens to audio: {decode_s:.3f} s (either way)")
    return emit(report)


if __name__ == "__main__":
    main()
