"""What this process's CPU offers the fast paths: instruction-set probes, read once per process.

``aar.precision.policy`` (``precision="auto"``) and ``aar.precision.reduced`` (the slow-bfloat16 log message)
decide from these features alone, never from a timing, so every process on a machine decides the
same. ``measured_speedups`` times the paths for the benchmark report only.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from aar.precision import int8

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class CpuFeatures:
    """What the CPU offers the fast paths.

    Attributes:
        flags: Instruction-set flags from /proc/cpuinfo (empty where it cannot be read).
        capability: ``torch.backends.cpu.get_cpu_capability()``, e.g. "AVX512", "AVX2", "DEFAULT".
        amx_bf16: Intel AMX tiles for bfloat16, as oneDNN sees them.
        int8_kernel: PyTorch has a quantized dynamic linear kernel and engine here.
        vendor: The CPU's vendor id from /proc/cpuinfo ("AuthenticAMD", "GenuineIntel"; empty
            where it cannot be read).
        int8_saturates: The int8 kernel sums pairs of 8-bit products in a saturating int16 (x86
            without VNNI), asked of the kernel itself (``aar.precision.int8.kernel_saturates``).
    """

    flags: frozenset[str]
    capability: str
    amx_bf16: bool
    int8_kernel: bool
    vendor: str = ""
    int8_saturates: bool = False

    @property
    def bf16_dot(self) -> bool:
        """bfloat16 dot-product instructions (AVX512-BF16) or AMX tiles."""
        return "avx512_bf16" in self.flags or self.amx_bf16


def _cpuinfo(*keys: str) -> str:
    """The first /proc/cpuinfo value of a line starting with one of ``keys`` ("" if none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(keys):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _amx_bf16() -> bool:
    # torch.cpu._is_amx_tile_supported is private; getattr keeps aar working if it goes away.
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(torch.backends.mkldnn.is_available() and probe is not None and probe())
    except RuntimeError:
        return False


@functools.cache
def cpu_features() -> CpuFeatures:
    """The features of this process's CPU (read once)."""
    return CpuFeatures(frozenset(_cpuinfo("flags", "Features").split()),
                       torch.backends.cpu.get_cpu_capability(), _amx_bf16(), int8.kernel_available(),
                       _cpuinfo("vendor_id"), int8.kernel_saturates())


@functools.cache
def measured_speedups(rows: int = 64, features: int = 512, repeats: int = 5) -> dict[str, float]:
    """Speed of bf16 and int8 products relative to float32 on this CPU, measured once per process.

    For reports (``benchmarks/generate.py``); no decision of aar depends on it. A (rows, features)
    input times a (4 features, features) weight, the three taking turns,
    best of ``repeats`` each (about 50 ms in all).

    Returns:
        ``{"bf16": x, "int8": y}``, float32 time over the path's time (above 1 is faster).
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, features, generator=gen)
    w = torch.randn(4 * features, features, generator=gen) / features**0.5
    w_bf16, w_int8 = w.bfloat16(), int8.Int8Weight(w)
    runs = {"fp32": lambda: F.linear(x, w), "bf16": lambda: F.linear(x.bfloat16(), w_bf16).float(),
            "int8": lambda: w_int8(x, None)}
    best = dict.fromkeys(runs, float("inf"))
    with torch.no_grad():
        for _ in range(repeats + 1):  # the first round warms up
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - start)
    speedups = {name: best["fp32"] / best[name] for name in ("bf16", "int8")}
    logger.info("measured speed against float32 on this CPU: %s", speedups)
    return speedups


def bf16_is_fast(features: CpuFeatures | None = None) -> bool:
    """Whether bfloat16 products beat float32 on this CPU, from its features.

    AMX: yes. AVX512-BF16 without AMX: on AMD processors (bfloat16 generation ran 2.1x float32 on an
    AMD EPYC), not on Intel ones (0.86x on an Intel Xeon; docs/performance.md). Otherwise no.
    """
    features = features or cpu_features()
    if features.amx_bf16:
        return True
    return features.bf16_dot and features.vendor == "AuthenticAMD"


def int8_is_fast(features: CpuFeatures | None = None) -> bool:
    """Whether ``precision="auto"`` runs int8 on this CPU: where PyTorch's x86 int8 kernel exists.

    With VNNI its products run at 8 bits; without (AVX2, AVX-512 without VNNI) at 7 bits, which
    keeps them exact; both meet the accuracy gates and beat float32 (docs/performance.md). Other
    processors (ARM's QNNPACK kernel) were not measured: no.
    """
    features = features or cpu_features()
    return features.int8_kernel and features.capability.startswith(("AVX2", "AVX512"))
