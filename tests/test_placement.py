"""Device, dtype and precision of ``AARGenerator``: ``to()`` is ``nn.Module``'s, the fast paths are
``set_precision`` (module swaps) and ``dtype=`` at loading."""

import copy

import pytest
import torch
from conftest import tiny_generator

from aar.nn.block import AdaLNBlock, CosineSelfAttention, FeedForward
from aar.nn.linear import Linear
from aar.precision.int8 import Int8Linear
from aar.precision.reduced import ReducedLinear
from aar.precision.swaps import ErfFeedForward, FusedAdaLNBlock, FusedCosineSelfAttention


@pytest.fixture()
def gen():
    return tiny_generator().eval()


def _dtypes(module):
    return {t.dtype for t in [*module.parameters(), *module.buffers()] if t.is_floating_point()}


@pytest.mark.parametrize(("cast", "dtype"), [
    (lambda g: g.to(torch.float64), torch.float64),
    (lambda g: g.double(), torch.float64),
    (lambda g: g.to("cpu", torch.bfloat16), torch.bfloat16),
    (lambda g: g.bfloat16(), torch.bfloat16),
    (lambda g: g.to(dtype=torch.float16), torch.float16),
    (lambda g: g.to(torch.zeros(1, dtype=torch.float64)), torch.float64),
])
def test_to_casts_every_tensor_as_nn_module_does(gen, cast, dtype):
    assert cast(gen) is gen
    assert _dtypes(gen.transformer) == _dtypes(gen.tokenizer) == {dtype}
    assert gen.dtype == dtype and gen.transformer.activation_dtype == dtype


def test_to_refuses_what_nn_module_refuses(gen):
    with pytest.raises(TypeError):
        gen.to(dtypes=torch.bfloat16)
    assert _dtypes(gen) == {torch.float32}


def test_a_float64_generator_generates_in_float64(gen):
    codes = gen.double().generate_codes(torch.randn(2, 512), seed=0)
    assert len(codes) == gen.config.num_scales
    assert gen.transformer.condition(torch.randn(1, 512, dtype=torch.float64)).dtype == torch.float64


def test_set_precision_swaps_modules_and_back(gen):
    x = torch.randn(2, 512)
    before = gen.generate_codes(x, seed=0, top_k=1, top_p=None)
    state = {k: v.clone() for k, v in gen.transformer.state_dict().items()}

    gen.set_precision("bf16")
    t = gen.transformer
    assert gen.precision == "bf16" and gen.dtype == torch.bfloat16
    assert type(t.head) is Linear and t.head.weight.dtype == torch.float32
    assert isinstance(t.word_embed, ReducedLinear) and isinstance(t.blocks[0].ffn.fc1, ReducedLinear)
    assert type(t.blocks[0]) is FusedAdaLNBlock and type(t.blocks[0].attn) is FusedCosineSelfAttention
    assert type(t.blocks[0].ffn) is FeedForward  # bfloat16 keeps the tanh GELU
    assert t.blocks[0].ffn.fc1.bias.dtype == torch.float32 and t.pos_1LC.dtype == torch.float32
    assert gen.transformer.state_dict().keys() == state.keys()  # a swap renames nothing

    gen.set_precision("int8", emulate=True)
    assert gen.precision == "int8" and gen.dtype == torch.float32
    assert isinstance(t.blocks[0].attn.mat_qkv, Int8Linear) and type(t.blocks[0].ffn) is ErfFeedForward
    assert type(t.word_embed) is Linear and type(t.head) is Linear

    gen.set_precision("fp32")
    assert gen.precision == "fp32" and _dtypes(gen.transformer) == {torch.float32}
    assert all(type(m) in (Linear, torch.nn.Linear) for m in t.modules() if isinstance(m, torch.nn.Linear))
    fused = {FusedAdaLNBlock, FusedCosineSelfAttention, ErfFeedForward}
    assert {type(m) for m in t.modules()} & fused == set()
    assert type(t.blocks[0]) is AdaLNBlock and type(t.blocks[0].attn) is CosineSelfAttention
    # bfloat16 rounded the matrix weights once; int8 and the way back to float32 changed nothing more
    linear = {k for k, v in state.items() if k.endswith(".weight") and v.ndim == 2 and "lvl_embed" not in k}
    rounded = {k: v.bfloat16().float() if k in linear - {"head.weight"} else v for k, v in state.items()}
    assert all(torch.equal(gen.transformer.state_dict()[k], v) for k, v in rounded.items())
    assert len(before) == len(gen.generate_codes(x, seed=0, top_k=1, top_p=None))


def test_int8_from_fp32_keeps_the_float_weights_bit_for_bit(gen):
    reference = copy.deepcopy(gen)
    gen.set_precision("int8", emulate=True).set_precision("fp32")
    assert all(torch.equal(a, b) for a, b in zip(gen.state_dict().values(), reference.state_dict().values()))
    x = torch.randn(2, 512)
    after, before = gen.generate_codes(x, seed=3), reference.generate_codes(x, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(after, before))


def test_set_precision_refuses_unknown_values_by_name(gen):
    with pytest.raises(ValueError, match=r"one of \['fp32', 'bf16', 'int8', 'auto'\], got 'fp16'"):
        gen.set_precision("fp16")
    assert gen.precision == "fp32"


@pytest.mark.parametrize(("dtype", "matrix", "head"), [
    (torch.bfloat16, torch.bfloat16, torch.float32),
    (torch.float16, torch.float16, torch.float32),
    (torch.float64, torch.float64, torch.float64),
])
def test_dtype_at_loading_keeps_its_rule(tmp_path, dtype, matrix, head):
    """``from_pretrained(dtype=...)``: bfloat16/float16 are matrix weights only (activations stay
    float32); float64 is the whole transformer. The tokenizer stays float32."""
    from aar import AARGenerator

    tiny_generator().save_pretrained(tmp_path)
    gen = AARGenerator.from_pretrained(tmp_path, dtype=dtype)
    assert gen.dtype == matrix and gen.transformer.head.weight.dtype == head
    assert gen.transformer.activation_dtype == head and gen.tokenizer.dtype == torch.float32
    assert gen.generate(torch.randn(1, 512), seed=0).dtype == torch.float32
