"""dllabs.hardware: native bf16 detected from the CPU's flags, the precision a CPU run picks (with the detection
faked both ways, through the composed configs of every trainer option and every lab), and the arithmetic peak."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from dllabs import hardware
from dllabs.resolvers import register_resolvers
from tests.conftest import CONF_DIR, compose_config

AMX_CPU = {"fpu", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}  # e.g. Sapphire Rapids
AVX512_BF16_CPU = {"fpu", "avx2", "fma", "avx512f", "avx512_bf16"}  # e.g. AMD EPYC Zen 4
PLAIN_CPU = {"fpu", "avx2", "fma", "avx512f"}  # e.g. Skylake-SP: AVX-512 but no bf16
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


@pytest.fixture
def cpu_has(monkeypatch):
    """Fake this machine's CPU flags (and no GPU): ``cpu_has(flags)``."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)

    def fake(flags: set[str]) -> None:
        monkeypatch.setattr(hardware, "cpu_flags", lambda cpuinfo=hardware.CPUINFO: set(flags))

    register_resolvers()
    return fake


def test_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU @ 2.60GHz\nvmx flags\t: ept\nflags\t\t: fpu avx512f amx_bf16\n"
                       "cpu MHz\t\t: 2599.998\nprocessor\t: 1\nflags\t\t: fpu avx512f amx_bf16\ncpu MHz\t\t: 2400.000\n")
    assert hardware.cpu_flags(cpuinfo) == {"fpu", "avx512f", "amx_bf16"}  # not the "vmx flags" line
    assert hardware.cpu_model(cpuinfo) == "Test CPU @ 2.60GHz"
    assert hardware.cpu_model(tmp_path / "missing")  # the platform's answer
    assert hardware.clock_ghz(cpuinfo) == pytest.approx(2.599998)
    assert hardware.cpu_flags(tmp_path / "missing") is None


@pytest.mark.parametrize(("flags", "native"), [(AMX_CPU, True), (AVX512_BF16_CPU, True), (PLAIN_CPU, False)])
def test_native_bf16_from_flags(flags, native):
    assert hardware.native_bf16(flags) is native


@pytest.mark.parametrize("native", [True, False])
def test_without_flags_torch_decides(monkeypatch, native):
    monkeypatch.setattr(hardware, "cpu_flags", lambda cpuinfo=hardware.CPUINFO: None)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert hardware.native_bf16() is native


@pytest.mark.parametrize(
    ("setting", "accelerator", "native", "expected"),
    [
        ("auto", "cpu", True, "bf16-mixed"),
        ("auto", "cpu", False, "32-true"),
        ("auto", "gpu", True, "32-true"),  # on a GPU auto leaves the default; trainer=gpu sets its own
        ("32-true", "cpu", True, "32-true"),  # a lab's pin wins over detection
        ("64-true", "cpu", True, "64-true"),
        ("bf16-mixed", "cpu", False, "bf16-mixed"),
    ],
)
def test_cpu_precision_rule(setting, accelerator, native, expected):
    assert hardware.cpu_precision(setting, accelerator, native=native) == expected


@pytest.mark.parametrize(("flags", "expected"), [(AMX_CPU, "bf16-mixed"), (PLAIN_CPU, "32-true")])
@pytest.mark.parametrize("trainer", ["cpu", "default", "ddp_cpu", "ddp_spawn"])
def test_trainer_picks_bf16_only_where_the_cpu_has_it(tmp_path, cpu_has, flags, expected, trainer):
    """``cpu_precision=auto`` through every CPU trainer option (default and ddp_spawn: accelerator auto, no GPU)."""
    cpu_has(flags)
    cfg = compose_config([f"trainer={trainer}", "cpu_precision=auto"], tmp_path)
    assert cfg.trainer.precision == expected


def test_trainer_precision_on_the_command_line_forces_fp32(tmp_path, cpu_has):
    cpu_has(AMX_CPU)
    cfg = compose_config(["trainer=cpu", "cpu_precision=auto", "trainer.precision=32-true"], tmp_path)
    assert cfg.trainer.precision == "32-true"


@pytest.mark.parametrize("flags", [AMX_CPU, PLAIN_CPU])
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_each_lab_keeps_its_pinned_precision_on_any_cpu(tmp_path, cpu_has, flags, experiment):
    """A lab's precision changes with the processor only where its ledger has the bf16 run (auto: bf16 only where
    native): resnet20_fast_cpu and lstm_imdb; every other lab is pinned to fp32."""
    cpu_has(flags)
    cfg = compose_config([f"experiment={experiment}", "trainer=cpu"], tmp_path)
    if experiment in ("resnet20_fast_cpu", "lstm_imdb"):
        assert cfg.cpu_precision == "auto"
        assert cfg.trainer.precision == ("bf16-mixed" if flags is AMX_CPU else "32-true")
    else:
        assert (cfg.cpu_precision, cfg.trainer.precision) == ("32-true", "32-true")


def test_the_default_job_stays_fp32(tmp_path, cpu_has):
    cpu_has(AMX_CPU)
    assert compose_config([], tmp_path).trainer.precision == "32-true"


def test_the_config_file_keeps_the_interpolation():
    """The run's saved config holds the rule, its hparams the resolved value: the rule lives in one place."""
    trainer = OmegaConf.load(CONF_DIR / "trainer" / "default.yaml")
    assert OmegaConf.to_container(trainer)["precision"] == "${dllabs.cpu_precision:${cpu_precision},${.accelerator}}"


# ----------------------------------------------------------------------------------------------- the peak
def test_peak_of_an_amx_cpu():
    peak = hardware.cpu_peak(cores=2, flags=AMX_CPU, ghz=2.6)
    assert peak.fp32 == pytest.approx(2 * 2.6e9 * 64)  # AVX-512: 2 FMA units x 16 lanes x 2
    assert peak.bf16 == pytest.approx(2 * 2.6e9 * 2048)  # AMX: 1,024 bf16 multiply-adds per cycle x 2
    assert peak.derivation("bf16") == "2 cores x 2.60 GHz x 2,048 FLOP/cycle (AMX: 1,024 bf16 FMA x 2)"


@pytest.mark.parametrize(
    ("flags", "fp32", "bf16"),
    [(AVX512_BF16_CPU, 64, 128), (PLAIN_CPU, 64, 64), ({"avx2", "fma"}, 32, 32), ({"sse2"}, 16, 16)],
)
def test_flops_per_cycle(flags, fp32, bf16):
    per_cycle = hardware.flops_per_cycle(flags)
    assert (per_cycle[0], per_cycle[2]) == (fp32, bf16)


def test_no_peak_without_flags_or_clock():
    assert hardware.cpu_peak(cores=2, flags=AMX_CPU, ghz=0) is None


def test_training_flops_are_six_per_forward_mac():
    assert hardware.training_flops_per_image(1_000) == 6_000
