"""OpenVINO backends on the tiny preset: parity with eager, the variants, the IR cache.

Exports are shared through module-scoped fixtures and a temporary cache folder (about 5 s each on
2 cores); the cache tests that need corrupt entries work on copies or on a fake exporter.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("openvino")

from pytest_cxrperf.backends.openvino import (
    INSTALL_HINT,
    OpenVINOBackend,
    OpenVINOBf16Backend,
    OpenVINOF32Backend,
    OpenVINOInt8Backend,
    OpenVINORunner,
)
from pytest_cxrperf.backends.openvino_cache import (
    ENV_VAR,
    MANIFEST,
    cache_root,
    ensure_entry,
    verify_entry,
)
from pytest_cxrperf.backends.openvino_export import (
    DECODER_FILE,
    DECODER_INPUTS,
    PREFILL_FILE,
    empty_past,
    entry_key,
    prompt_only,
    stateless_copy,
)
from pytest_cxrperf.backends.registry import get_backend_class
from pytest_cxrperf.backends.torch_runner import TorchRunner
from pytest_cxrperf.model.loader import build_preset
from pytest_cxrperf.model.study import load_studies

NEW_TOKENS = 16


@pytest.fixture(scope="module")
def tiny():
    return build_preset("tiny")


@pytest.fixture(scope="module")
def studies(tiny):
    return [tiny.processor(study) for study in load_studies()]


@pytest.fixture(scope="module")
def eager(tiny):
    return TorchRunner(tiny.model, tiny.processor)


@pytest.fixture(scope="module")
def eager_out(eager, studies):
    return {
        s.study_name: eager.generate(s, NEW_TOKENS, force_length=True, return_logits=True)
        for s in studies
    }


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ov-cache")


@pytest.fixture(scope="module")
def f32(tiny, studies, cache_dir):
    backend = OpenVINOF32Backend(cache_dir=cache_dir)
    return backend, backend.prepare(tiny, studies[0])


@pytest.fixture(scope="module")
def variants(tiny, studies, cache_dir, f32):  # after f32: the f32 IR is then a cache hit
    prepared = {}
    for cls in (OpenVINOBackend, OpenVINOBf16Backend, OpenVINOInt8Backend):
        backend = cls(cache_dir=cache_dir)
        prepared[cls.name] = (backend, backend.prepare(tiny, studies[0]))
    return prepared


def _rel_l2(ref: torch.Tensor, out: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(out - ref) / torch.linalg.vector_norm(ref))


# --- parity -------------------------------------------------------------------------------------


def test_f32_matches_eager_token_for_token(f32, studies, eager_out):
    backend, runner = f32
    assert backend.precision == "fp32"
    for inputs in studies:
        ref = eager_out[inputs.study_name]
        out = runner.generate(inputs, NEW_TOKENS, force_length=True, return_logits=True)
        assert out.token_ids == ref.token_ids, inputs.study_name
        assert out.text == ref.text
        assert out.step_logits is not None and ref.step_logits is not None
        assert out.step_logits.shape == ref.step_logits.shape
        assert out.step_logits.dtype == torch.float32
        span = float(ref.step_logits[0].max() - ref.step_logits[0].min())
        assert float((out.step_logits[0] - ref.step_logits[0]).abs().max()) < 1e-3 * span
        assert _rel_l2(ref.step_logits, out.step_logits) < 1e-4  # the gate's fp32 tolerance


def test_f32_score_matches_eager(f32, eager, studies, eager_out):
    _, runner = f32
    for inputs in studies:
        targets = eager_out[inputs.study_name].token_ids
        ref = eager.score(inputs, targets)
        out = runner.score(inputs, targets)
        assert out.shape == ref.shape == (len(targets), ref.shape[1])
        assert out.dtype == torch.float32
        assert _rel_l2(ref, out) < 1e-4
        # teacher forcing on greedy tokens: the logits of step i are those generate saw at step i
        assert torch.equal(out.argmax(-1), torch.tensor(targets))


def test_score_of_no_targets_is_empty(f32, eager, studies):
    _, runner = f32
    assert runner.score(studies[0], []).shape == eager.score(studies[0], []).shape


def test_generate_stops_at_eos_unless_forced(f32, studies, tiny):
    _, runner = f32
    eos = tiny.config.eos_token_id
    out = runner.generate(studies[0], 3)
    assert len(out.token_ids) <= 3
    assert eos not in out.token_ids[:-1]
    with pytest.raises(ValueError):
        runner.generate(studies[0], 0)


def test_timings_cover_every_stage(f32, studies):
    _, runner = f32
    out = runner.generate(studies[1], 5, force_length=True)
    assert out.timings.vision_s > 0 and out.timings.prefill_s > 0
    assert len(out.timings.decode_s) == 4 and all(t > 0 for t in out.timings.decode_s)


@pytest.mark.parametrize(
    ("name", "tolerance"),
    [("openvino", 0.05), ("openvino-bf16", 0.05), ("openvino-int8", 0.15)],
)
def test_variants_shape_and_closeness(variants, studies, eager, eager_out, name, tolerance):
    _, runner = variants[name]
    for inputs in studies:
        ref = eager_out[inputs.study_name]
        out = runner.generate(inputs, NEW_TOKENS, force_length=True, return_logits=True)
        assert len(out.token_ids) == NEW_TOKENS
        assert out.step_logits is not None and ref.step_logits is not None
        assert out.step_logits.shape == ref.step_logits.shape
        assert torch.isfinite(out.step_logits).all()
        assert _rel_l2(ref.step_logits[0], out.step_logits[0]) < tolerance  # prefill logits
        score = runner.score(inputs, ref.token_ids)
        assert score.shape == (NEW_TOKENS, ref.step_logits.shape[1])
        assert _rel_l2(eager.score(inputs, ref.token_ids), score) < tolerance


def test_precisions_are_what_the_plugin_runs(variants, f32):
    assert f32[0].prepare_info.details["inference_precision"] == "f32"
    assert f32[0].prepare_info.details["kv_cache_precision"] == "f32"
    default, _ = variants["openvino"]
    real = default.prepare_info.details["inference_precision"]
    assert default.precision == {"bf16": "bf16", "f32": "fp32"}[real]
    int8, _ = variants["openvino-int8"]
    assert int8.precision == "int8-weights" and int8.prepare_info.details["weights"] == "int8"
    bf16, _ = variants["openvino-bf16"]
    assert bf16.precision in ("bf16", "fp32")  # fp32 where the CPU has no bf16 at all


# --- the graphs ---------------------------------------------------------------------------------


def _layer_types(compiled) -> list[str]:
    return [
        op.get_rt_info()["layerType"].astype(str) for op in compiled.get_runtime_model().get_ops()
    ]


def test_decoder_keeps_kv_cache_in_fused_attention(f32, tiny):
    _, runner = f32
    decoder = runner.compiled["decoder"].get_runtime_model()
    layers = tiny.model.language_model.config.num_hidden_layers
    sdpa = [
        op
        for op in decoder.get_ops()
        if "ScaledDotProductAttention" in op.get_rt_info()["layerType"].astype(str)
    ]
    assert len(sdpa) == layers
    # every cache variable feeds the attention node directly: no Concat copying the cache per step
    for op in decoder.get_ops():
        if op.get_rt_info()["layerType"].astype(str) == "MemoryInput":
            consumers = {
                t.get_node().get_rt_info()["layerType"].astype(str)
                for out in op.outputs()
                for t in out.get_target_inputs()
            }
            assert "Concatenation" not in consumers
    assert len(runner.compiled["decoder"].create_infer_request().query_state()) == 2 * layers
    assert "MemoryInput" not in _layer_types(runner.compiled["prefill"])


def _read_part(backend, name):
    import openvino as ov

    return ov.Core().read_model(str(Path(backend.prepare_info.details["cache_dir"]) / name))


def test_prompt_ir_equals_the_decoder_from_an_empty_cache(f32, studies):
    """prefill.xml (no past inputs, block-causal attention) computes what the stateful decoder's
    own graph computes from an empty cache: the same logits and present KV, to f32 rounding."""
    import openvino as ov

    backend, runner = f32
    reference = stateless_copy(_read_part(backend, DECODER_FILE))
    pasts = [p.get_any_name() for p in reference.inputs if p.get_any_name().startswith("past_")]
    assert pasts  # what the prompt IR does without
    prompt = _read_part(backend, PREFILL_FILE)
    assert {p.get_any_name() for p in prompt.inputs} == set(DECODER_INPUTS)
    outputs = {o.get_any_name() for o in reference.outputs}
    assert {o.get_any_name() for o in prompt.outputs} == outputs
    # attention in two query blocks: twice the plugin's fused attention per layer
    sdpa = [op for op in prompt.get_ops() if op.get_type_name() == "ScaledDotProductAttention"]
    layers = len(pasts) // 2
    assert len(sdpa) == 2 * layers
    assert {p.get_any_name() for p in runner.compiled["prefill"].inputs} == set(DECODER_INPUTS)

    inputs = studies[0]
    embeds = runner._embed_prompt(inputs.input_ids, runner._encode(inputs.pixel_values))
    length = embeds.shape[1]
    assert length > 2  # both blocks hold queries
    feed = runner._feed(embeds, 0, np.arange(length, dtype=np.int64))
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    expected = core.compile_model(reference, "CPU", config).create_infer_request()
    empty = empty_past(reference)
    assert sorted(empty) == sorted(pasts)
    expected.infer({**feed, **empty})
    got = core.compile_model(prompt, "CPU", config).create_infer_request()
    got.infer(feed)
    for output in ("logits", "present.0.key", "present.1.value"):
        want = expected.get_tensor(output).data
        assert want.shape[-2] == length
        np.testing.assert_allclose(got.get_tensor(output).data, want, rtol=1e-4, atol=1e-5)


def test_prompt_only_turns_past_inputs_into_an_empty_cache(f32):
    backend, _ = f32
    stateless = stateless_copy(_read_part(backend, DECODER_FILE))
    names = {p.get_any_name() for p in stateless.inputs}
    assert names > set(DECODER_INPUTS)
    assert {p.get_any_name() for p in prompt_only(stateless).inputs} == set(DECODER_INPUTS)


def test_runner_refuses_a_prefill_that_takes_a_past_cache(f32, tiny):
    import openvino as ov

    backend, runner = f32
    stateless = ov.Core().compile_model(stateless_copy(_read_part(backend, DECODER_FILE)), "CPU")
    parts = dict(runner.compiled, prefill=stateless)
    with pytest.raises(ValueError, match="prompt_only"):
        OpenVINORunner(**parts, processor=tiny.processor)


def test_decoder_inputs_follow_the_optimum_layout(f32):
    _, runner = f32
    names = {port.get_any_name() for port in runner.compiled["decoder"].inputs}
    assert names == {
        "inputs_embeds",
        "attention_mask",
        "position_ids",
        "logits_indices",
        "beam_idx",
    }
    assert [o.get_any_name() for o in runner.compiled["decoder"].outputs] == ["logits"]


# --- prepare info and cache ---------------------------------------------------------------------


def test_second_prepare_is_a_cache_hit(f32, variants, tiny, studies, cache_dir):
    first, _ = f32
    assert first.prepare_info.details["cache"] == "miss"
    assert first.prepare_info.details["export_s"] > 0
    again = OpenVINOF32Backend(cache_dir=cache_dir)
    again.prepare(tiny, studies[0])
    details = again.prepare_info.details
    assert details["cache"] == "hit" and details["export_s"] == 0.0
    assert details["compile_s"] > 0 and again.prepare_info.seconds > 0
    assert details["cache_dir"] == first.prepare_info.details["cache_dir"]
    for name in ("openvino", "openvino-bf16"):  # same IR, other compile settings
        assert variants[name][0].prepare_info.details["cache"] == "hit"
    assert variants["openvino-int8"][0].prepare_info.details["cache"] == "miss"  # its own IR
    json.dumps(details)  # reported as JSON by the plugin


def test_build_exports_so_that_prepare_only_loads(tiny, studies, tmp_path, monkeypatch):
    """A cold cache is filled by build(), outside the measured preparation: prepare then loads
    the entry build() made (it exports nothing), and still reports that the cache was cold."""
    from pytest_cxrperf.backends import openvino_export

    backend = OpenVINOF32Backend(cache_dir=tmp_path)
    backend.build(tiny)
    assert list(tmp_path.iterdir())  # the entry is on disk before prepare

    def no_export(*args, **kwargs):
        raise AssertionError("prepare exported again")

    monkeypatch.setattr(openvino_export, "export_parts", no_export)
    backend.prepare(tiny, studies[0])
    details = backend.prepare_info.details
    assert details["cache"] == "miss" and details["export_s"] > 0  # build's export, reported
    assert backend.prepare_info.seconds < details["export_s"] + details["compile_s"]


def test_the_session_builds_a_backend_before_sampling_its_preparation(monkeypatch):
    """The order that keeps a fresh runner's export out of the prepare memory figure."""
    from types import SimpleNamespace

    from pytest_cxrperf import memory
    from pytest_cxrperf.backends import base
    from pytest_cxrperf.session import CxrSession
    from pytest_cxrperf.settings import BackendSpec

    calls: list[str] = []

    class Recording(base.Backend):
        name = "recording"

        def build(self, reference):
            calls.append("build")

        def prepare(self, reference, example):
            calls.append("prepare")
            return SimpleNamespace(generate=lambda *a, **k: calls.append("generate"))

    def sampled(step, hz=0.0):
        calls.append("sample")
        return step(), None

    monkeypatch.setattr(memory, "sampled", sampled)
    monkeypatch.setattr("pytest_cxrperf.session.get_backend_class", lambda name: Recording)
    session = CxrSession(SimpleNamespace(threads=1, max_new_tokens=2), [])  # type: ignore[arg-type]
    study = SimpleNamespace(name="study")
    session._reference, session._studies = SimpleNamespace(), [study]  # type: ignore[assignment]
    session._inputs = {"study": "inputs"}  # type: ignore[dict-item]
    session.prepared(BackendSpec("recording"))
    assert calls == ["build", "sample", "prepare", "sample", "generate"]


def test_threads_are_passed_to_the_plugin(tiny, studies, cache_dir, f32):
    backend = OpenVINOF32Backend(threads=1, cache_dir=cache_dir)
    backend.prepare(tiny, studies[0])
    assert backend.prepare_info.details["threads"] == 1


def test_corrupt_bin_is_detected_and_rebuilt(f32, tiny, studies, eager_out, tmp_path):
    backend, _ = f32
    source = Path(str(backend.prepare_info.details["cache_dir"]))
    root = tmp_path / "copy"
    shutil.copytree(source, root / source.name)
    victim = root / source.name / DECODER_FILE.replace(".xml", ".bin")
    data = bytearray(victim.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # same size, different bytes
    victim.write_bytes(bytes(data))
    assert "sha256" in str(verify_entry(root / source.name))

    rebuilt = OpenVINOF32Backend(cache_dir=root)
    runner = rebuilt.prepare(tiny, studies[0])
    assert rebuilt.prepare_info.details["cache"] == "miss"
    assert "decoder.bin" in str(rebuilt.prepare_info.details["rebuilt_because"])
    assert verify_entry(root / source.name) is None
    ref = eager_out[studies[0].study_name]
    assert runner.generate(studies[0], NEW_TOKENS, force_length=True).token_ids == ref.token_ids


def test_different_weights_or_settings_give_different_keys(tiny):
    key, metadata = entry_key(tiny, "f32")
    assert entry_key(tiny, "f32")[0] == key
    assert entry_key(build_preset("tiny", seed=1), "f32")[0] != key
    assert entry_key(tiny, "int8")[0] != key
    assert set(metadata["versions"]) >= {"openvino", "torch", "transformers"}


# --- the cache module on its own (fake exporter: fast) -------------------------------------------


def _fake_export(calls: list[int]):
    def export(folder: Path) -> None:
        calls.append(1)
        (folder / "model.xml").write_text("<net/>")
        (folder / "model.bin").write_bytes(os.urandom(4096))

    return export


def test_cache_entry_is_written_atomically_and_reused(tmp_path):
    calls: list[int] = []
    entry = ensure_entry(tmp_path, "k1", _fake_export(calls), {"model": "fake"})
    assert not entry.hit and calls == [1]
    manifest = json.loads((entry.path / MANIFEST).read_text())
    assert manifest["files"]["model.bin"]["size"] == 4096 and manifest["model"] == "fake"
    assert ensure_entry(tmp_path, "k1", _fake_export(calls), {}).hit and calls == [1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".trash-"))]


@pytest.mark.parametrize("damage", ["truncate", "delete", "no-manifest", "bad-manifest"])
def test_damaged_cache_entry_is_rebuilt(tmp_path, damage):
    calls: list[int] = []
    entry = ensure_entry(tmp_path, "k", _fake_export(calls), {})
    binary = entry.path / "model.bin"
    if damage == "truncate":
        binary.write_bytes(binary.read_bytes()[:100])
    elif damage == "delete":
        binary.unlink()
    elif damage == "no-manifest":  # an interrupted write
        (entry.path / MANIFEST).unlink()
    else:
        (entry.path / MANIFEST).write_text("{not json")
    assert verify_entry(entry.path) is not None
    again = ensure_entry(tmp_path, "k", _fake_export(calls), {})
    assert not again.hit and again.rebuilt_because and calls == [1, 1]
    assert verify_entry(again.path) is None


def test_failed_export_leaves_nothing_behind(tmp_path):
    def broken(folder: Path) -> None:
        (folder / "half.bin").write_bytes(b"x")
        raise RuntimeError("converter crashed")

    with pytest.raises(RuntimeError):
        ensure_entry(tmp_path, "k", broken, {})
    assert not (tmp_path / "k").exists()
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env" / "openvino"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv(ENV_VAR)
    assert cache_root().parts[-2:] == ("pytest-cxrperf", "openvino")


# --- registry and availability ------------------------------------------------------------------


def test_backends_are_registered():
    for cls in (OpenVINOBackend, OpenVINOF32Backend, OpenVINOBf16Backend, OpenVINOInt8Backend):
        assert get_backend_class(cls.name) is cls
        assert cls().availability().ok


@pytest.mark.parametrize(
    ("cls", "missing"),
    [
        (OpenVINOF32Backend, "openvino"),
        (OpenVINOInt8Backend, "nncf"),
        (OpenVINOBackend, "openvino"),
    ],
)
def test_unavailable_without_the_packages(monkeypatch, cls, missing):
    monkeypatch.setitem(__import__("sys").modules, missing, None)  # import raises ImportError
    availability = cls().availability()
    assert not availability.ok
    assert missing in availability.reason and INSTALL_HINT in availability.reason


def test_embedding_splice_checks_image_token_count(f32, studies):
    _, runner = f32
    inputs = studies[0]
    with pytest.raises(ValueError, match="<image> tokens"):
        runner._embed_prompt(inputs.input_ids, np.zeros((1, 128), dtype=np.float32))
