"""``AARGenerator.to`` reads every argument form of ``nn.Module.to`` with public API only."""

import pytest
import torch

from aar import AARConfig, AARGenerator, SATConfig, SATTokenizer
from aar.precision.placement import ToArguments, to_arguments

CPU = torch.device("cpu")
T64 = torch.zeros(1, dtype=torch.float64)

FORMS = [
    (("cpu",), {}, ToArguments(CPU, None, False, None)),
    ((CPU,), {}, ToArguments(CPU, None, False, None)),
    (("cpu", torch.bfloat16), {}, ToArguments(CPU, torch.bfloat16, False, None)),
    (("cpu", torch.float16, True), {}, ToArguments(CPU, torch.float16, True, None)),
    (("cpu",), {"dtype": torch.float64, "non_blocking": True}, ToArguments(CPU, torch.float64, True, None)),
    ((torch.float16,), {}, ToArguments(None, torch.float16, False, None)),
    ((torch.float16, True), {}, ToArguments(None, torch.float16, True, None)),
    ((), {"dtype": torch.bfloat16}, ToArguments(None, torch.bfloat16, False, None)),
    ((), {"device": "cpu", "dtype": torch.float32}, ToArguments(CPU, torch.float32, False, None)),
    ((T64,), {}, ToArguments(CPU, torch.float64, False, None)),
    ((T64, True), {}, ToArguments(CPU, torch.float64, True, None)),
    ((), {"tensor": T64}, ToArguments(CPU, torch.float64, False, None)),
    ((None,), {}, ToArguments(None, None, False, None)),
    ((), {}, ToArguments(None, None, False, None)),
    ((), {"memory_format": torch.channels_last}, ToArguments(None, None, False, torch.channels_last)),
    ((0,), {}, ToArguments(torch.device(0), None, False, None)),
]


@pytest.mark.parametrize(("args", "kwargs", "expected"), FORMS)
def test_every_form_of_module_to_is_read(args, kwargs, expected):
    assert to_arguments(*args, **kwargs) == expected


@pytest.mark.parametrize(("args", "kwargs", "expected"), FORMS)
def test_forms_read_as_pytorch_reads_them(args, kwargs, expected):
    parse = getattr(getattr(torch._C, "_nn", None), "_parse_to", None)  # a reference, tests only
    if parse is None:
        pytest.skip("this PyTorch has no torch._C._nn._parse_to to compare with")
    assert tuple(parse(*args, **kwargs)) == tuple(expected)


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    ((torch.float16, torch.float16), {}, "dtype must be a torch.dtype|non_blocking must be a bool"),
    (("cpu", torch.float16, True, False), {}, "too many positional"),
    (("cpu",), {"device": "cpu"}, "'device' given twice"),
    ((), {"device": "cpu", "colour": 1}, "unexpected keyword 'colour'"),
    ((torch.float16,), {"device": "cpu"}, "unexpected keyword 'device'"),
    (("cpu", "float16"), {}, "dtype must be a torch.dtype, got str"),
    ((1.5,), {}, "device must be a torch.device, a str or an int, got float"),
    ((), {"non_blocking": 1}, "non_blocking must be a bool, got int"),
    ((), {"tensor": "x"}, "tensor must be a torch.Tensor, got str"),
    ((), {"memory_format": "nchw"}, "memory_format must be a torch.memory_format, got str"),
])
def test_forms_module_to_refuses_are_refused_by_name(args, kwargs, match):
    with pytest.raises(TypeError, match=match):
        to_arguments(*args, **kwargs)


@pytest.fixture()
def gen():
    tok = SATTokenizer(SATConfig(n_filters=4, dimension=8, latent_dim=8, codebook_size=64))
    return AARGenerator(AARConfig(depth=1, embed_dim=64, num_heads=1, latent_dim=8, codebook_size=64), tok)


@pytest.mark.parametrize(("args", "kwargs"), [
    (("cpu", torch.bfloat16), {}),
    ((torch.bfloat16,), {}),
    ((torch.zeros(1, dtype=torch.bfloat16),), {}),
    ((), {"device": "cpu", "dtype": torch.bfloat16, "non_blocking": False}),
])
def test_generator_to_applies_each_form(gen, args, kwargs):
    assert gen.to(*args, **kwargs) is gen
    assert gen.dtype == torch.bfloat16 and gen.device == CPU
    assert gen.transformer.head.weight.dtype == torch.float32  # the rule of to(dtype=...) holds
    assert gen.tokenizer.dtype == torch.float32


def test_generator_to_refuses_a_bad_form_before_changing_anything(gen):
    with pytest.raises(TypeError, match="unexpected keyword 'dtypes'"):
        gen.to(dtypes=torch.bfloat16)
    assert gen.dtype == torch.float32
