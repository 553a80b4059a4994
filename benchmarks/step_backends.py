"""The transformer blocks of one generation, scale by scale, in aar's int8 and on other int8 backends.

    python benchmarks/step_backends.py                             # fp32, aar and ort (if installed)
    python benchmarks/step_backends.py --depth 1 --backends fp32,aar,ort,inductor   # one block
    python benchmarks/step_backends.py --tiny                      # a tiny model (for tests)

Most of a guided second is the 16 blocks run once per scale (16 steps). This benchmark times the
blocks of the released width (``AARConfig()``: C 1024, 16 heads, FFN 4096, 16 blocks unless
``--depth``; random weights) at every scale of one generation, batch 1 with cfg: each scale of s
tokens runs 2s rows, the conditional and the unconditional branch, attending to the keys and values
of the scales before it. Embedding, head, sampling and decode are left out. Backends, taking turns
run by run so that they share the machine's load:

- ``fp32``: aar's float32 blocks (the official arithmetic) with its KV cache, the reference.
- ``aar``: aar's int8 blocks (``precision="int8"``: per-row int8 activations, PyTorch's quantized
  dynamic linear, fused elementwise passes).
- ``ort``: the float32 step (``FloatStep``: keys and values in and out, one pure function) exported
  to ONNX (``torch.onnx.export``), quantized by onnxruntime's ``quantize_dynamic`` (int8
  per-channel weights; activations per tensor, so a row's numbers depend on its batch-mates) and run
  by onnxruntime on the same threads. Needs ``pip install onnxruntime onnx onnxscript``.
- ``ort-rows``: the same export with aar's int8 arithmetic written into the ONNX graph
  (``per_row_int8``: per-row activation scales, ``MatMulInteger``), batch-invariant like aar's.
- ``inductor``: the same step quantized with PT2E (torchao's ``X86InductorQuantizer``, dynamic
  per-tensor activations, int8 per-channel weights) and compiled by ``torch.compile`` (inductor,
  freezing on), one static graph per scale (16 shapes), compile time reported apart. Needs
  ``pip install torchao`` and a C++ compiler. Only when named: on a 2-core machine the 16-block graphs
  did not finish compiling in 13 minutes and took over 12 GB; ``--depth 1`` compiles in about a
  minute.

The JSON holds how far ``FloatStep`` is from aar's float32 blocks (what the exporters get), each
backend's max abs error against float32 at the last scale, how many int8 products each exporter
made (so that a backend that skipped a product shows), and how much the conditional row's output
moves when the unconditional row beside it is 50 times larger (0 where a row's numbers do not depend
on its batch-mates). Time per scale is the best of
``--runs``; aar's include its cache writes, the exported step's only the call (the appending of
its new keys and values to the past it is given next is not timed). The table goes to stdout; the
last line is one JSON object with the machine.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from _common import emit, machine, parser, setup, table
from torch import nn

from aar import AARConfig
from aar.nn.kv_cache import KVCache
from aar.nn.transformer import AARTransformer
from aar.precision.cpu import cpu_features
from aar.precision.swaps import to_int8

BACKENDS = ("fp32", "aar", "ort", "ort-rows", "inductor")
TINY = AARConfig(depth=2, embed_dim=64, num_heads=2, scales=(1, 2, 4))


class FloatStep(nn.Module):
    """The blocks' step as one pure function for exporters: inputs in, output and new keys/values out.

    ``forward(x_BlC, k_past, v_past, ada)`` with past keys and values (D, B, H, L0, c) and the AdaLN
    tensors (6, D, B, 1, C) in ``AdaLN`` order (scales already ``1 + s``) returns the output of the
    last block (B, l, C) and this step's keys and values (D, B, H, l, c): the float32 arithmetic of
    ``aar.nn.block.AdaLNBlock``, block after block, without the cache object.
    """

    def __init__(self, blocks: nn.ModuleList):
        super().__init__()
        self.blocks = blocks
        self.width = blocks[0].attn.proj.weight.shape[0]  # a constant, so exporters keep shapes static
        for i, block in enumerate(blocks):
            bias_3C, scale_21H11 = block.attn.constants()
            self.register_buffer(f"bias_{i}", bias_3C.detach().clone())
            self.register_buffer(f"temperature_{i}", scale_21H11[0].detach().clone())

    def forward(self, x, k_past, v_past, ada):
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            x, k, v = self._block(i, block, x, k_past[i], v_past[i], *ada[:, i].unbind(0))
            keys.append(k)
            values.append(v)
        return x, torch.stack(keys), torch.stack(values)

    def _block(self, i, blk, x, k_past, v_past, gate_a, gate_f, scale_a, scale_f, shift_a, shift_f):
        attn = blk.attn
        B, C, H = x.shape[0], self.width, attn.num_heads
        h = F.layer_norm(x, (C,), eps=blk.norm_eps) * scale_a + shift_a
        qkv = F.linear(h, attn.mat_qkv.weight, getattr(self, f"bias_{i}"))
        qkv = qkv.view(B, -1, 3, H, C // H).permute(2, 0, 3, 1, 4)
        q = F.normalize(qkv[0], dim=-1) * getattr(self, f"temperature_{i}")
        k = F.normalize(qkv[1], dim=-1)
        v = qkv[2]
        keys, values = torch.cat((k_past, k), 2), torch.cat((v_past, v), 2)
        out = F.scaled_dot_product_attention(q, keys, values, scale=1.0)
        out = F.linear(out.transpose(1, 2).reshape(B, -1, C), attn.proj.weight, attn.proj.bias)
        x = x + out * gate_a
        h = F.layer_norm(x, (C,), eps=blk.norm_eps) * scale_f + shift_f
        h = F.linear(F.gelu(F.linear(h, blk.ffn.fc1.weight, blk.ffn.fc1.bias), approximate="tanh"),
                     blk.ffn.fc2.weight, blk.ffn.fc2.bias)
        return x + h * gate_f, k, v


def scale_inputs(config: AARConfig, seed: int = 0) -> list[torch.Tensor]:
    """Per scale, the first block's input (2, s, C)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, s, config.embed_dim, generator=g) for s in config.scales]


def _empty_past(config: AARConfig, seen: int = 0) -> torch.Tensor:
    H = config.num_heads
    return torch.zeros(config.depth, 2, H, seen, config.embed_dim // H)


def run_steps(call, inputs: list, past, cat) -> tuple[list[float], list[torch.Tensor]]:
    """Every scale through an exported step ``call(si, x, k_past, v_past) -> (y, k, v)``, the keys
    and values it returns appended (``cat``) to the past it is given next: per-scale seconds of each
    call, and the outputs as tensors."""
    times, outs = [], []
    ks = vs = past
    for si, x in enumerate(inputs):
        start = time.perf_counter()
        y, kn, vn = call(si, x, ks, vs)
        times.append(time.perf_counter() - start)
        ks, vs = cat(ks, kn), cat(vs, vn)
        outs.append(torch.as_tensor(y))
    return times, outs


def _cat_tokens(past: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    return torch.cat((past, new), 3)


def eager_runner(step: FloatStep, ada: torch.Tensor, config: AARConfig):
    """``step`` itself, eagerly, with a concatenated cache: what the exporters are given."""
    return lambda inputs: run_steps(lambda si, x, k, v: step(x, k, v, ada), inputs, _empty_past(config),
                                    _cat_tokens)


def aar_runner(model: AARTransformer, cond_BC: torch.Tensor):
    """Run ``model``'s blocks through every scale with aar's KV cache: per-scale seconds, outputs."""
    constants = [block.constants(cond_BC, groups=2) for block in model.blocks]

    def run(inputs):
        times, outs = [], []
        cache = KVCache(len(model.blocks), model.config.tokens_per_window)
        for x in inputs:
            start = time.perf_counter()
            for block, slot, block_constants in zip(model.blocks, cache.slots(), constants):
                x = block(x, cond_BC, past=slot, constants=block_constants, groups=2)
            times.append(time.perf_counter() - start)
            cache.commit(x.shape[1])
            outs.append(x)
        return times, outs

    return run


def per_row_int8(model) -> int:
    """Rewrite every product of an ONNX ``model`` with a weight, in place, as per-row int8 like aar's:
    symmetric per-output-channel int8 weights, and each activation row rounded on its own largest
    magnitude to integers in [-127, 127], carried as uint8 codes around 128 (onnxruntime's int8 x int8
    ``MatMulInteger`` is many times slower than its uint8 x int8 one), multiplied into int32 and
    scaled back, so that a row's result does not depend on the other rows. Returns how many products
    it rewrote."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    weights = {init.name: init for init in graph.initializer}

    def constant(name: str, value: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(value, name))
        return name

    c127 = constant("rows_127", np.array(127.0, np.float32))
    tiny = constant("rows_tiny", np.array(1e-30, np.float32))
    c128 = constant("rows_128", np.array(128.0, np.float32))
    zero = constant("rows_zero", np.array(128, np.uint8))
    last = constant("rows_last_axis", np.array([-1], np.int64))
    nodes, count = [], 0
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in weights:
            nodes.append(node)
            continue
        w_KM = numpy_helper.to_array(weights[node.input[1]])
        scale_M = np.abs(w_KM).max(axis=0) / 127.0
        scale_M[scale_M == 0] = 1.0
        p, x = f"rows{count}_", node.input[0]
        wq = constant(p + "wq", np.round(w_KM / scale_M).astype(np.int8))
        ws = constant(p + "ws", scale_M.astype(np.float32))
        make = helper.make_node
        nodes += [
            make("Abs", [x], [p + "abs"]),
            make("ReduceMax", [p + "abs", last], [p + "max"], keepdims=1),
            make("Max", [p + "max", tiny], [p + "max1"]),  # an all-zero row keeps a nonzero scale
            make("Div", [p + "max1", c127], [p + "step"]),
            make("Div", [x, p + "step"], [p + "unit"]),
            make("Round", [p + "unit"], [p + "round"]),
            make("Add", [p + "round", c128], [p + "shifted"]),  # uint8 codes around 128: the fast u8s8 kernel
            make("Cast", [p + "shifted"], [p + "q"], to=TensorProto.UINT8),
            make("MatMulInteger", [p + "q", wq, zero], [p + "acc"]),
            make("Cast", [p + "acc"], [p + "accf"], to=TensorProto.FLOAT),
            make("Mul", [p + "accf", p + "step"], [p + "rows"]),
            make("Mul", [p + "rows", ws], [node.output[0]]),
        ]
        count += 1
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return count


def ort_runner(step: FloatStep, ada: torch.Tensor, config: AARConfig, threads: int, per_row: bool):
    """Export ``step`` to ONNX and make it int8: onnxruntime's ``quantize_dynamic`` (per-tensor
    activations) or, with ``per_row``, ``per_row_int8``. A runner, setup seconds, int8 products."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    started = time.perf_counter()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with tempfile.TemporaryDirectory(prefix="aar-ort-") as folder:
        float_path, int8_path = os.path.join(folder, "step.onnx"), os.path.join(folder, "step.int8.onnx")
        past = _empty_past(config, config.scales[0])
        axes = {"x": {1: "l"}, "k_past": {3: "past"}, "v_past": {3: "past"}}
        torch.onnx.export(step, (scale_inputs(config)[1], past, past.clone(), ada), float_path,
                          input_names=["x", "k_past", "v_past", "ada"], output_names=["y", "k", "v"],
                          dynamic_axes=axes, dynamo=False)
        if per_row:
            model = onnx.load(float_path)
            per_row_int8(model)
            onnx.save(model, int8_path)
        else:
            quantize_dynamic(float_path, int8_path, weight_type=QuantType.QInt8, per_channel=True)
        int8_ops = sum(node.op_type in ("MatMulInteger", "DynamicQuantizeMatMul")
                       for node in onnx.load(int8_path).graph.node)
        session = ort.InferenceSession(int8_path, options, providers=["CPUExecutionProvider"])
    ada_np = ada.numpy()

    def call(si, x, k_past, v_past):
        return session.run(None, {"x": x.numpy(), "k_past": k_past, "v_past": v_past, "ada": ada_np})

    def run(inputs):
        return run_steps(call, inputs, _empty_past(config).numpy(), lambda a, b: np.concatenate((a, b), 3))

    return run, time.perf_counter() - started, int8_ops


def inductor_runner(step: FloatStep, ada: torch.Tensor, config: AARConfig):
    """PT2E-quantize ``step`` (x86 inductor, dynamic) and compile one graph per scale: a runner,
    setup seconds, quantize nodes."""
    import torch._inductor.config as inductor_config
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    inductor_config.freezing = True
    started = time.perf_counter()
    compiled, seen, int8_ops = [], 0, 0
    for x in scale_inputs(config):  # one static graph per scale
        past = _empty_past(config, seen)
        args = (x, past, past.clone(), ada)
        exported = torch.export.export(step, args, strict=True).module()  # strict keeps source_fn_stack
        quantizer = xiq.X86InductorQuantizer().set_global(
            xiq.get_default_x86_inductor_quantization_config(is_dynamic=True))
        prepared = prepare_pt2e(exported, quantizer)
        prepared(*args)
        converted = convert_pt2e(prepared)
        int8_ops = sum("choose_qparams" in str(node.target) for node in converted.graph.nodes)
        module = torch.compile(converted)
        module(*args)
        compiled.append(module)
        seen += x.shape[1]

    def run(inputs):
        return run_steps(lambda si, x, k, v: compiled[si](x, k, v, ada), inputs, _empty_past(config),
                         _cat_tokens)

    return run, time.perf_counter() - started, int8_ops


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__)
    p.add_argument("--backends", default="fp32,aar,ort",
                   help=f"comma-separated, from {BACKENDS} (default: fp32,aar,ort)")
    p.add_argument("--runs", type=int, default=5, help="timed passes over the scales (best per scale)")
    p.add_argument("--depth", type=int, help="blocks (default: the released 16; --tiny: 2)")
    args = p.parse_args(argv)
    setup(args)
    backends = [b for b in args.backends.split(",") if b]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        p.error(f"unknown backend(s) {unknown}; choose from {BACKENDS}")
    if not backends:
        p.error(f"--backends names no backend (got {args.backends!r}); choose from {BACKENDS}")
    if args.runs < 1:
        p.error(f"--runs must be at least 1, got {args.runs}")
    config = TINY if args.tiny else AARConfig()
    if args.depth is not None:
        if args.depth < 1:
            p.error(f"--depth must be at least 1, got {args.depth}")
        config = dataclasses.replace(config, depth=args.depth)
    torch.manual_seed(0)
    float_model = AARTransformer(config).eval()
    int8_model = copy.deepcopy(float_model)
    to_int8(int8_model, reduce_range=cpu_features().int8_saturates)
    cond_BC = torch.randn(2, config.embed_dim, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ada = torch.stack([torch.stack(b.constants(cond_BC, groups=2).ada) for b in float_model.blocks], 1)
    step = FloatStep(float_model.blocks).eval()
    inputs = scale_inputs(config)
    runners, setup_s, skipped, quantize_nodes = {}, {}, {}, {}
    if "fp32" in backends:
        runners["fp32"] = aar_runner(float_model, cond_BC)
    if "aar" in backends:
        runners["aar"] = aar_runner(int8_model, cond_BC)
    threads = torch.get_num_threads()
    for name, build in (("ort", lambda: ort_runner(step, ada, config, threads, per_row=False)),
                        ("ort-rows", lambda: ort_runner(step, ada, config, threads, per_row=True)),
                        ("inductor", lambda: inductor_runner(step, ada, config))):
        if name in backends:
            try:
                with torch.no_grad():
                    runners[name], setup_s[name], quantize_nodes[name] = build()
            except ImportError as e:
                skipped[name] = f"not installed: {e.name}"
    with torch.no_grad():  # the exporters' input computes what aar's float32 blocks compute
        exported_function = eager_runner(step, ada, config)(inputs)[1][-1]
        step_error = float((exported_function - aar_runner(float_model, cond_BC)(inputs)[1][-1]).abs().max())
    best = {name: [float("inf")] * len(inputs) for name in runners}
    errors, reference = {}, None
    with torch.no_grad():
        for _ in range(args.runs + 1):  # the first pass warms up
            for name, run in runners.items():
                times, outs = run(inputs)
                best[name] = [min(a, b) for a, b in zip(best[name], times)]
                if name == "fp32":
                    reference = outs
                if reference is not None:
                    errors[name] = float((outs[-1] - reference[-1]).abs().max())
        # Batch-mates: the unconditional row 50 times larger; a per-row int8 keeps row 0 as it was.
        louder = [torch.stack((x[0], 50 * x[1])) for x in inputs]
        mates = {name: float((run(louder)[1][-1][0] - run(inputs)[1][-1][0]).abs().max())
                 for name, run in runners.items()}
    rows = [[si, s, *(round(best[n][si] * 1e3, 2) for n in runners)] for si, s in enumerate(config.scales)]
    totals = {n: sum(best[n]) for n in runners}
    rows.append(["all", sum(config.scales), *(round(totals[n] * 1e3, 1) for n in runners)])
    table(["scale", "tokens", *(f"{n} ms" for n in runners)], rows)
    result = {"benchmark": "step_backends", "model": "tiny" if args.tiny else "released width",
              "config": dataclasses.asdict(config), "runs": args.runs, "exported_step_vs_fp32": step_error,
              "per_scale_ms": {n: [round(t * 1e3, 3) for t in best[n]] for n in runners},
              "blocks_s": {n: round(t, 4) for n, t in totals.items()},
              "max_abs_error_vs_fp32": errors, "row_change_when_its_mate_is_50x": mates,
              "setup_s": {n: round(t, 1) for n, t in setup_s.items()},
              "quantize_nodes": quantize_nodes, "skipped": skipped, "machine": machine(args.tiny)}
    return emit(result)


if __name__ == "__main__":
    main()
