"""Shared fixtures. The whole suite runs offline: the Hub is never contacted."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # read by huggingface_hub at import time
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from aar import AARConfig, AARGenerator, SATConfig, SATTokenizer  # noqa: E402

# Property tests: no deadline (first calls warm up kernels); in CI the examples are fixed, and a failure
# prints the blob that replays it (@reproduce_failure).
settings.register_profile("ci", derandomize=True, database=None, print_blob=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI", "").lower() in ("1", "true") else "dev")

FIXTURES = Path(__file__).parent / "fixtures" / "official_small"
SAT_PTH = FIXTURES / "sat_official.pth"
AAR_PTH = FIXTURES / "aar_official.pth"

#: A tokenizer small enough to build and run in milliseconds; dimension == latent_dim, so its
#: projections are identities (the layout of the released SAT_d128_lat128).
TINY_SAT = SATConfig(n_filters=4, dimension=8, latent_dim=8, codebook_size=256)


def same_scores(a: object, b: object, rel: float = 1e-6) -> bool:
    """``a == b`` for reports (dataclasses, dicts, lists) with every float within ``rel`` of the other.

    Scores of the same audio can differ in the 7th digit between processes: float32 sums are split by
    thread and vector width (docs/evaluation.md); tokens, audio, paths and counts must still be equal.
    """
    import dataclasses
    import math

    if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
        return type(a) is type(b) and same_scores(dataclasses.asdict(a), dataclasses.asdict(b), rel)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_scores(a[k], b[k], rel) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_scores(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return a == b


def tiny_generator(seed: int = 0, depth: int = 2, heads: int = 2, peaky: bool = False) -> AARGenerator:
    """A fresh generator on ``TINY_SAT`` (the test's own copy: free to change it).

    Args:
        seed: Seeds the random weights of the tokenizer, then of the transformer.
        depth: Transformer blocks.
        heads: Attention heads of 32 channels each.
        peaky: Scale the output head by 20, so that codes depend visibly on the condition and on the
            cache (a mixed-up condition or cache changes the sampled tokens).
    """
    torch.manual_seed(seed)
    tokenizer = SATTokenizer(TINY_SAT).eval()
    config = AARConfig(depth=depth, embed_dim=32 * heads, num_heads=heads, latent_dim=TINY_SAT.latent_dim,
                       codebook_size=TINY_SAT.codebook_size)
    gen = AARGenerator(config, tokenizer).eval()
    if peaky:
        with torch.no_grad():
            gen.transformer.head.weight.mul_(20)
    return gen


@pytest.fixture(scope="session")
def shared_tiny_generator():
    """``tiny_generator(peaky=True)``, built once for the session: read it, never change it (tests
    that need other weights, another precision or another clap encoder build their own or monkeypatch)."""
    gen = tiny_generator(peaky=True)
    before = {k: v.clone() for k, v in gen.state_dict().items()}
    attributes = dict(vars(gen))
    yield gen
    # Teardown: a test that changed the shared model would make later tests depend on test order.
    after = gen.state_dict()
    changed = [k for k in before if k not in after or not torch.equal(before[k], after[k])]
    assert not changed and dict(vars(gen)) == attributes, f"a test changed the shared generator: {changed}"


@pytest.fixture(scope="session")
def reference() -> dict[str, torch.Tensor]:
    """Inputs and outputs of the official implementation on the fixture checkpoints."""
    return load_file(str(FIXTURES / "reference.safetensors"))


@pytest.fixture(scope="session")
def official_tokenizer() -> SATTokenizer:
    return SATTokenizer.from_pretrained(SAT_PTH)


@pytest.fixture(scope="module")
def official_generator() -> AARGenerator:
    """The fixture checkpoints as a generator, one per test module."""
    return AARGenerator.from_pretrained(AAR_PTH, tokenizer=SAT_PTH)


@pytest.fixture
def one_thread():
    """Run on one torch thread (faster on a busy machine, and like the CLI subprocesses); restored
    afterwards. Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_tokenizer() -> SATTokenizer:
    torch.manual_seed(0)
    return SATTokenizer(TINY_SAT).eval()


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs for the tests of one module (skipped where Ray Data is not installed);
    ``aar``'s ``ray_session`` uses a Ray already running as it is. Module-scoped: an idle Ray's own
    processes would slow every later test."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
