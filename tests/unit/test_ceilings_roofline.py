"""Precisions and their tolerances, the entry points, measured ceilings and the roofline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pytest_cxrperf import ceilings as ceilings_module
from pytest_cxrperf.backends.precision import DEFAULT_TOLERANCES, PRECISION_ROOFS, PRECISIONS
from pytest_cxrperf.ceilings import Ceilings, Sizes, cache_path, ceilings, load_cached, measure
from pytest_cxrperf.roofline import ModelCost, model_cost, roofline_fractions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]


# --- precisions -----------------------------------------------------------------------------------


def test_every_precision_has_tolerances_and_a_roofline():
    assert set(PRECISIONS) == set(DEFAULT_TOLERANCES) == set(PRECISION_ROOFS)


@pytest.mark.parametrize("looser", ["int4-weights", "int8"])
def test_lower_precisions_are_not_held_tighter_than_int8_weights(looser):
    base, low = DEFAULT_TOLERANCES["int8-weights"], DEFAULT_TOLERANCES[looser]
    assert low["tie_margin"] >= base["tie_margin"]
    assert low["prefill_rel_err"] >= base["prefill_rel_err"]
    assert low["teacher_top1"] <= base["teacher_top1"]


def test_new_backends_have_entry_points():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    group = project["project"]["entry-points"]["pytest_cxrperf.backends"]
    assert "openvino-int4" not in group  # it lost: out of its tolerance on bench (README)
    assert group["openvino-w8a8"] == "pytest_cxrperf.backends.openvino:OpenVINOW8A8Backend"
    assert group["openvino-w8a8-int4"] == (
        "pytest_cxrperf.backends.openvino:OpenVINOW8A8Int4Backend"
    )
    from pytest_cxrperf.backends import openvino

    for name, target in group.items():
        module, _, attr = target.partition(":")
        if module == "pytest_cxrperf.backends.openvino":
            cls = getattr(openvino, attr)
            assert cls.name == name and cls.precision in PRECISIONS


# --- ceilings -------------------------------------------------------------------------------------


def test_measure_gives_positive_rates():
    measured = measure(1, Sizes.tiny())
    assert measured.fp32_gflops > 0 and measured.bandwidth_gbs > 0
    # bf16 is measured exactly where this CPU has it natively (None: emulated, no ceiling)
    assert (measured.bf16_gflops is None) == (measured.paths["bf16"] is None)
    assert measured.bf16_gflops is None or measured.bf16_gflops > 0
    assert measured.int8_gops is None or measured.int8_gops > 0
    assert measured.threads == 1 and measured.fingerprint and measured.environment
    assert measured.rows()[0][0] == f"fp32 matmul ({measured.paths['fp32']})"


@pytest.mark.parametrize(
    ("cpuinfo", "bf16", "int8"),
    [
        ("avx2-zen3.txt", None, "AVX2 VPMADDUBSW/VPMADDWD (no VNNI)"),
        ("avx512-zen4.txt", "AVX512_BF16", "AVX512-VNNI"),
        ("spr-amx.txt", "AMX-BF16", "AMX-INT8"),
    ],
)
@pytest.mark.usefixtures("no_isa_cap")
def test_each_class_measures_the_ceilings_its_instructions_have(monkeypatch, cpuinfo, bf16, int8):
    """On an AVX2 host bf16 is not measured (an emulation is no ceiling) and the int8 ceiling is
    named for the AVX2 path; the cache file is the class's own."""
    monkeypatch.setenv("CXRPERF_CPUINFO", str(ROOT / "tests" / "data" / "cpuinfo" / cpuinfo))
    from pytest_cxrperf import machine

    measured = measure(1, Sizes.tiny())
    assert measured.paths["bf16"] == bf16 and measured.paths["int8"] == int8
    assert (measured.bf16_gflops is None) == (bf16 is None)
    labels = [row[0] for row in measured.rows()]
    assert any(int8 in label for label in labels)
    if bf16 is None:
        assert "emulated" in labels[1] and measured.rows()[1][1] == "emulated"
    assert measured.fingerprint == machine.machine_class(1).cpu_key
    assert Ceilings.from_dict(json.loads(json.dumps(measured.to_dict()))) == measured


def test_cache_round_trip(tmp_path, monkeypatch):
    calls = []
    real = ceilings_module.measure

    def counting(threads, sizes=None):
        calls.append(threads)
        return real(threads, sizes)

    monkeypatch.setattr(ceilings_module, "measure", counting)
    first, cached = ceilings(1, sizes=Sizes.tiny(), cache_dir=tmp_path)
    assert not cached and calls == [1]
    path = cache_path(1, tmp_path)
    assert path.parent == tmp_path / "ceilings" and path.is_file()
    assert json.loads(path.read_text())["schema"] == ceilings_module.SCHEMA == 2
    second, cached = ceilings(1, sizes=Sizes.tiny(), cache_dir=tmp_path)
    assert cached and second == first and calls == [1]
    _, cached = ceilings(1, sizes=Sizes.tiny(), cache_dir=tmp_path, refresh=True)
    assert not cached and calls == [1, 1]


def test_cache_is_ignored_when_stale_or_damaged(tmp_path):
    sizes = Sizes.tiny()
    path = tmp_path / "c.json"
    assert load_cached(path, sizes) is None  # absent
    path.write_text("{not json")
    assert load_cached(path, sizes) is None
    measured = measure(1, sizes)
    stale = {**measured.to_dict(), "environment": "py0-torch0-00000000"}
    path.write_text(json.dumps(stale))
    assert load_cached(path, sizes) is None
    older = {**measured.to_dict(), "schema": 1}  # before bf16 was measured only where native
    path.write_text(json.dumps(older))
    assert load_cached(path, sizes) is None
    path.write_text(json.dumps(measured.to_dict()))
    assert load_cached(path, sizes) == measured
    assert load_cached(path, Sizes()) is None  # measured with other sizes


def test_cli_prints_the_table(tmp_path, monkeypatch, capsys):
    from pytest_cxrperf import cli

    monkeypatch.setenv("CXRPERF_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(ceilings_module, "Sizes", lambda **_: Sizes.tiny())
    assert cli.main(["ceilings", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "bf16 matmul" in out and "GB/s" in out and "measured now" in out
    assert cli.main(["ceilings", "--threads", "1"]) == 0
    assert "cached" in capsys.readouterr().out


# --- roofline -------------------------------------------------------------------------------------

CEILINGS = Ceilings(
    fp32_gflops=100.0,
    bf16_gflops=200.0,
    int8_gops=400.0,
    bandwidth_gbs=50.0,
    threads=2,
    fingerprint="test",
    environment="test",
    sizes={},
)
COST = ModelCost(
    vision_flops=100e9,
    prefill_flops=300e9,
    decode_weight_params=1e9,
    kv_elements_per_position=1000.0,
    prompt_length=984,
)


def test_roofline_hand_example_bf16():
    medians = {"vision_s": 1.0, "prefill_s": 3.0, "per_token_s": 0.05, "total_s": 5.0}
    fractions = roofline_fractions(COST, medians, "bf16", CEILINGS)
    assert fractions["vision"]["achieved"] == pytest.approx(100.0)  # 100 GFLOP in 1 s
    assert fractions["vision"]["fraction"] == pytest.approx(0.5)  # of 200 bf16
    assert fractions["prefill"]["fraction"] == pytest.approx(0.5)
    # decode: 1e9 params x 2 bytes + 1000 x (984 + 16) x 2 bytes = 2.002 GB in 0.05 s
    assert fractions["decode"]["achieved"] == pytest.approx(40.04)
    assert fractions["decode"]["fraction"] == pytest.approx(40.04 / 50)
    assert fractions["decode"]["unit"] == "GB/s"


def test_roofline_picks_the_ceiling_by_precision():
    medians = {"vision_s": 1.0, "prefill_s": 1.0, "per_token_s": 0.01}
    int8 = roofline_fractions(COST, medians, "int8", CEILINGS)
    assert int8["vision"]["ceiling"] == 400.0 and int8["vision"]["unit"] == "GOP/s"
    fp32 = roofline_fractions(COST, medians, "fp32", CEILINGS)
    assert fp32["vision"]["fraction"] == pytest.approx(1.0)
    weights = roofline_fractions(COST, medians, "int8-weights", CEILINGS, kv_bytes=1.0)
    assert weights["vision"]["ceiling"] == 200.0  # unpacked to bf16 for compute
    assert weights["decode"]["achieved"] == pytest.approx((1e9 + 1000 * 1000) / 0.01 / 1e9)
    int4 = roofline_fractions(COST, medians, "int4-weights", CEILINGS, kv_bytes=0.0)
    assert int4["decode"]["achieved"] < weights["decode"]["achieved"] / 1.5


def test_emulated_bf16_is_held_to_the_fp32_ceiling():
    emulated = Ceilings(**{**CEILINGS.__dict__, "bf16_gflops": None})
    medians = {"vision_s": 1.0, "prefill_s": 3.0, "per_token_s": 0.05}
    for precision in ("bf16", "int8-weights"):
        fractions = roofline_fractions(COST, medians, precision, emulated)
        assert fractions["vision"]["ceiling"] == 100.0  # fp32's, not a measured emulation
        assert fractions["vision"]["fraction"] == pytest.approx(1.0)
        assert "bf16 emulated" in fractions["vision"]["ceiling_name"]
        assert fractions["decode"]["ceiling"] == 50.0  # bandwidth is bandwidth


def test_roofline_leaves_out_missing_stages_and_rejects_unknown_precision():
    assert roofline_fractions(COST, {"prefill_s": 2.0}, "bf16", CEILINGS).keys() == {"prefill"}
    no_int8 = Ceilings(**{**CEILINGS.__dict__, "int8_gops": None})
    assert roofline_fractions(COST, {"vision_s": 1.0}, "int8", no_int8) == {}
    with pytest.raises(ValueError, match="no roofline"):
        roofline_fractions(COST, {}, "fp8", CEILINGS)


def test_model_cost_counts_the_tiny_model():
    from pytest_cxrperf.model.loader import build_preset

    tiny = build_preset("tiny")
    lm = tiny.model.language_model
    cost = model_cost(tiny.model, prompt_length=80, images=2)
    one = model_cost(tiny.model, prompt_length=80, images=1)
    assert cost.vision_flops == pytest.approx(2 * one.vision_flops)
    embed = lm.get_input_embeddings().weight.numel()
    total = sum(p.numel() for p in lm.parameters() if p.dim() == 2)
    assert cost.decode_weight_params == total - embed  # every 2-D weight but the embedding
    cfg = lm.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    assert (
        cost.kv_elements_per_position
        == 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim
    )
    assert cost.prefill_flops > 2 * (total - embed - lm.lm_head.weight.numel()) * 80
