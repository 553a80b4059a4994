"""What this process's CPU offers the fast paths: instruction-set probes and a short measurement.

``aar.precision`` (``precision="auto"``) and ``aar.nn.precision`` (the slow-bfloat16 log message)
decide from these. Every probe is read once per process.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from aar.nn import int8

logger = logging.getLogger(__name__)

#: A measured path must beat float32 by this factor to count as fast.
MIN_SPEEDUP = 1.2


@dataclass(frozen=True)
class CpuFeatures:
    """What the CPU offers the fast paths.

    Attributes:
        flags: Instruction-set flags from /proc/cpuinfo (empty where it cannot be read).
        capability: ``torch.backends.cpu.get_cpu_capability()``, e.g. "AVX512", "AVX2", "DEFAULT".
        amx_bf16: Intel AMX tiles for bfloat16, as oneDNN sees them.
        int8_kernel: PyTorch has a quantized dynamic linear kernel and engine here.
    """

    flags: frozenset[str]
    capability: str
    amx_bf16: bool
    int8_kernel: bool

    @property
    def vnni(self) -> bool:
        """int8 dot-product instructions (AVX512-VNNI or AVX-VNNI)."""
        return bool({"avx512_vnni", "avx_vnni"} & self.flags) or self.amx_bf16

    @property
    def bf16_dot(self) -> bool:
        """bfloat16 dot-product instructions (AVX512-BF16) or AMX tiles."""
        return "avx512_bf16" in self.flags or self.amx_bf16


def _cpuinfo_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


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
    return CpuFeatures(_cpuinfo_flags(), torch.backends.cpu.get_cpu_capability(), _amx_bf16(),
                       int8.kernel_available())


@functools.cache
def measured_speedups(rows: int = 64, features: int = 512, repeats: int = 5) -> dict[str, float]:
    """Speed of bf16 and int8 products relative to float32 on this CPU, measured once per process.

    A (rows, features) input times a (4 features, features) weight, the three taking turns,
    best of ``repeats`` each (about 50 ms in all).

    Returns:
        ``{"bf16": x, "int8": y}``, float32 time over the path's time (above 1 is faster).
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, features, generator=gen)
    w = torch.randn(4 * features, features, generator=gen) / features**0.5
    w_bf16, w_int8 = w.bfloat16(), int8.Int8Weight(w, reduce_range=not cpu_features().vnni)
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
    """Whether bfloat16 products beat float32 on this CPU.

    AMX: yes. No bfloat16 dot-product instructions: no. AVX512-BF16 without AMX varies by processor
    (faster on AMD EPYC, slower on an Intel Xeon, docs/performance.md): measured.
    """
    features = features or cpu_features()
    if features.amx_bf16:
        return True
    if not features.bf16_dot:
        return False
    return measured_speedups()["bf16"] >= MIN_SPEEDUP


def int8_is_fast(features: CpuFeatures | None = None) -> bool:
    """Whether the int8 kernel beats float32 on this CPU: with VNNI yes; x86 AVX2 without it, and
    other processors, are measured."""
    features = features or cpu_features()
    if not features.int8_kernel:
        return False
    if features.vnni:
        return True
    return measured_speedups()["int8"] >= MIN_SPEEDUP
