"""What the processor can do: native bf16 (detected, not guessed), the precision a CPU run uses, the arithmetic peak.

Native bf16 means the CPU multiplies bf16 in hardware: AVX512-BF16 (``vdpbf16ps``) or AMX (``amx_bf16`` tiles).
On Linux the kernel's CPU flags (``/proc/cpuinfo``) say so; elsewhere PyTorch's own checks
(``torch.cpu._is_avx512_bf16_supported`` / ``_is_amx_tile_supported``) do. Without it, bf16 autocast on a CPU is
emulated in fp32 and is slower than fp32, so ``auto`` means fp32 there.

The peak is cores x clock x FLOPs per cycle of the widest unit the flags show, per core:

- fp32: AVX-512 = 2 FMA units x 16 lanes x 2 = 64; AVX2 + FMA = 2 x 8 x 2 = 32; otherwise SSE 2 x 4 x 2 = 16
  (two FMA ports, as on server cores; a part with one 512-bit FMA unit has half the AVX-512 figure);
- bf16: AMX = 1,024 bf16 multiply-adds per cycle per core (one 16x32 by 32x16 tile product per 16 cycles) = 2,048;
  AVX512-BF16 = 2 units x 16 lanes x 2 pairs x 2 = 128; without native bf16 the fp32 figure.

The clock is the nominal one the kernel reports (``cpu MHz``; in a virtual machine the host's TSC rate): turbo
can run above it, so a measured fraction of peak is approximate within the turbo range.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

CPUINFO = Path("/proc/cpuinfo")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
AUTO = "auto"
BF16 = "bf16-mixed"
FP32 = "32-true"
# accelerator values of Lightning's Trainer that mean "not the CPU"
_NOT_CPU = {"gpu", "cuda", "mps", "tpu", "xla", "hpu"}


def cpuinfo_values(key: str, cpuinfo: Path = CPUINFO) -> list[str]:
    """Every value of ``key`` in ``/proc/cpuinfo`` (one per logical CPU), the one place this file is read; empty where
    it is missing (not Linux) or has no such key."""
    if not cpuinfo.exists():
        return []
    pairs = (line.split(":", 1) for line in cpuinfo.read_text().splitlines() if ":" in line)
    return [value.strip() for name, value in pairs if name.strip() == key]


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The processor's model name (``model name`` in ``/proc/cpuinfo``; the platform's answer elsewhere)."""
    names = cpuinfo_values("model name", cpuinfo)
    return names[0] if names else platform.processor() or platform.machine()


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str] | None:
    """The CPU's feature flags from ``/proc/cpuinfo`` (Linux; ``Features`` on ARM); None where it has none."""
    flags = cpuinfo_values("flags", cpuinfo) or cpuinfo_values("Features", cpuinfo)
    return set(flags[0].split()) if flags else None


def native_bf16(flags: set[str] | None = None) -> bool:
    """True where the processor has native bf16 (AVX512-BF16 or AMX): from ``flags`` (default: this CPU's),
    or from PyTorch's CPU checks where the flags cannot be read."""
    flags = cpu_flags() if flags is None else flags
    if flags is not None:
        return any(flag in flags for flag in NATIVE_BF16_FLAGS)
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def runs_on_cpu(accelerator: str) -> bool:
    """Whether Lightning's ``accelerator`` setting trains on the CPU (``auto``: when no GPU is available)."""
    accelerator = str(accelerator).lower()
    if accelerator == "cpu":
        return True
    if accelerator in _NOT_CPU:
        return False
    return not (torch.cuda.is_available() or torch.backends.mps.is_available())


def cpu_precision(setting: str, accelerator: str = "cpu", native: bool | None = None) -> str:
    """The Trainer's precision for a lab's ``cpu_precision`` setting.

    A concrete precision (``32-true``, ``64-true``, ``bf16-mixed``, ...) is used as it is, on any device: the lab
    pinned it. ``auto`` is ``bf16-mixed`` on a CPU with native bf16 (``native``: default, detected) and ``32-true``
    elsewhere, a GPU included (``trainer=gpu`` sets its own precision).
    """
    setting = str(setting)
    if setting != AUTO:
        return setting
    if not runs_on_cpu(accelerator):
        return FP32
    return BF16 if (native_bf16() if native is None else native) else FP32


@dataclass(frozen=True)
class Peak:
    """A processor's arithmetic peak for ``cores`` cores: FLOP/s in fp32 and bf16, and how each was derived."""

    cores: int
    ghz: float
    fp32_per_cycle: int
    bf16_per_cycle: int
    fp32_unit: str
    bf16_unit: str

    @property
    def fp32(self) -> float:
        return self.cores * self.ghz * 1e9 * self.fp32_per_cycle

    @property
    def bf16(self) -> float:
        return self.cores * self.ghz * 1e9 * self.bf16_per_cycle

    def derivation(self, dtype: str) -> str:
        per_cycle, unit = (
            (self.fp32_per_cycle, self.fp32_unit) if dtype == "fp32" else (self.bf16_per_cycle, self.bf16_unit)
        )
        return f"{self.cores} cores x {self.ghz:.2f} GHz x {per_cycle:,} FLOP/cycle ({unit})"


def flops_per_cycle(flags: set[str]) -> tuple[int, str, int, str]:
    """(fp32 FLOPs per cycle per core, its unit, bf16 FLOPs per cycle per core, its unit) from the CPU flags."""
    if "avx512f" in flags:
        fp32 = (64, "AVX-512: 2 FMA units x 16 lanes x 2")
    elif "avx2" in flags and "fma" in flags:
        fp32 = (32, "AVX2: 2 FMA units x 8 lanes x 2")
    else:
        fp32 = (16, "SSE: 2 units x 4 lanes x 2")
    if "amx_bf16" in flags:
        bf16 = (2048, "AMX: 1,024 bf16 FMA x 2")
    elif "avx512_bf16" in flags:
        bf16 = (128, "AVX512-BF16: 2 x 16 lanes x 2 pairs x 2")
    else:
        bf16 = (fp32[0], "no native bf16: fp32 units")
    return fp32[0], fp32[1], bf16[0], bf16[1]


def clock_ghz(cpuinfo: Path = CPUINFO) -> float | None:
    """The nominal clock in GHz (the highest ``cpu MHz`` in ``/proc/cpuinfo``); None where it is not reported."""
    mhz = [float(value) for value in cpuinfo_values("cpu MHz", cpuinfo)]
    return max(mhz) / 1000 if mhz else None


def cpu_peak(cores: int | None = None, flags: set[str] | None = None, ghz: float | None = None) -> Peak | None:
    """The peak of ``cores`` cores (default: every CPU this process may use) of this processor; None where its
    flags or clock cannot be read."""
    flags = cpu_flags() if flags is None else flags
    ghz = clock_ghz() if ghz is None else ghz
    if flags is None or not ghz:
        return None
    cores = cores or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    fp32, fp32_unit, bf16, bf16_unit = flops_per_cycle(flags)
    return Peak(cores, ghz, fp32, bf16, fp32_unit, bf16_unit)


def training_flops_per_image(forward_macs: int) -> int:
    """FLOPs of one training step per image: a multiply-add is 2 FLOPs, and backward costs twice the forward
    (gradients of the inputs and of the weights), so 2 x 3 x the forward MACs."""
    return 2 * 3 * forward_macs
