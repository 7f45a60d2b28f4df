"""The baseline store: layout, schema, atomic and locked writes, and clear errors."""

import json
import multiprocessing
import os
from dataclasses import replace

import pytest

from pytest_cxrperf.gate.baselines import (
    SCHEMA_VERSION,
    Baseline,
    BaselineError,
    BaselineStore,
    model_key,
    read_baseline,
)

FP = "amd-epyc-2c-t2-c2df9d65"


def make(
    backend="openvino",
    fingerprint=FP,
    scale=1.0,
    created="2025-01-01T00:00:00+00:00",
    n=5,
    machine_class=None,
):
    samples = tuple(scale * (0.5 + i / 1000) for i in range(n))
    control = None if backend == "eager" else tuple(1.0 + i / 1000 for i in range(n))
    return Baseline(
        backend=backend,
        model="tiny",
        fingerprint=fingerprint,
        samples_s=samples,
        control_samples_s=control,
        new_tokens=32,
        threads=2,
        rounds=n,
        warmup=1,
        precision="fp32",
        created=created,
        machine={"cpu": "AMD EPYC", "cores": 2},
        libraries={"torch": "2.13.0"},
        stage_medians_s={"vision_s": 0.1},
        memory_mib={"prepare": 120.5, "generate": 8.25},
        machine_class=machine_class or {},
    )


def test_round_trip_and_layout(tmp_path):
    store = BaselineStore(tmp_path)
    before, path = store.write(make())
    assert before is None
    assert path == tmp_path / FP / "tiny" / "openvino.json"
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["settings"] == {
        "new_tokens": 32,
        "threads": 2,
        "rounds": 5,
        "warmup": 1,
        "sessions": 1,
        "session_rounds": [],
    }
    assert data["libraries"] == {"torch": "2.13.0"} and data["created"].startswith("2025")
    assert len(data["samples_s"]) == 5 and len(data["control_samples_s"]) == 5
    assert store.load(path) == make()
    assert path.read_text().endswith("}\n")  # diff-friendly: one value per line, final newline


def test_write_returns_what_it_replaced(tmp_path):
    store = BaselineStore(tmp_path)
    store.write(make())
    before, _ = store.write(make(scale=1.2))
    assert before == make()
    assert store.find(FP, "tiny", "openvino").baseline.samples_s == pytest.approx(
        make(scale=1.2).samples_s
    )


def test_no_temp_files_are_left(tmp_path):
    store = BaselineStore(tmp_path)
    for scale in (1.0, 1.1, 1.2):
        store.write(make(scale=scale))
    assert sorted(p.name for p in (tmp_path / FP / "tiny").iterdir()) == ["openvino.json"]


def test_find_never_returns_another_class_but_names_the_nearest(tmp_path):
    from pytest_cxrperf.machine import MachineClass

    def cls(features, threads=2, environment="env-a"):
        return MachineClass("amd", 25, 17, features, 2, threads, environment)

    here = cls(("avx2", "avx512f", "avx512_bf16", "avx512_vnni"))
    store = BaselineStore(tmp_path)
    assert store.find(here, "tiny", "openvino").baseline is None
    for other in (cls(("avx2",)), cls(("avx2", "avx512f", "avx512_bf16", "avx512_vnni"), 8)):
        store.write(make(fingerprint=other.key, machine_class=other.to_dict()))
    found = store.find(here, "tiny", "openvino")
    assert found.baseline is None and found.nearest == cls(("avx2",)).key
    assert found.differences == ("avx512f", "avx512_bf16", "avx512_vnni")
    assert "differs in: avx512f, avx512_bf16, avx512_vnni" in found.missing_hint(here.key)
    store.write(make(fingerprint=here.key, machine_class=here.to_dict()))
    found = store.find(here, "tiny", "openvino")
    assert found.baseline.fingerprint == here.key
    assert found.path == tmp_path / here.key / "tiny" / "openvino.json"
    assert store.find(replace(here, environment="env-b"), "tiny", "openvino").baseline is None


def test_a_synthetic_slowdown_is_never_stored(tmp_path):
    with pytest.raises(BaselineError, match="never stored"):
        BaselineStore(tmp_path).write(make(backend="eager+slow=1.5"))
    assert not list(tmp_path.rglob("*.json"))


def corrupt_variants():
    good = make().to_json()
    text = json.dumps(good, indent=2)
    yield "truncated", text[: len(text) // 2], "truncated JSON"
    yield "conflict", "<<<<<<< HEAD\n" + text, "corrupt JSON"
    yield "not-object", "[1, 2]", "not a JSON object"
    yield "schema", json.dumps({**good, "schema": "other"}), "not a pytest-cxrperf latency baseline"
    yield "version", json.dumps({**good, "schema_version": 99}), "schema_version 99"
    yield (
        "missing",
        json.dumps({k: v for k, v in good.items() if k != "settings"}),
        "missing key 'settings'",
    )
    yield "negative", json.dumps({**good, "samples_s": [0.5, -1]}), "positive seconds"
    yield "empty", json.dumps({**good, "samples_s": []}), "positive seconds"
    yield "lengths", json.dumps({**good, "control_samples_s": [1.0]}), "differ in length"
    yield "memory", json.dumps({**good, "memory_mib": {"prepare": -3}}), "'memory_mib' must map"


@pytest.mark.parametrize("name, text, problem", list(corrupt_variants()), ids=lambda v: str(v)[:12])
def test_unreadable_file_is_a_clear_error_and_never_overwritten(tmp_path, name, text, problem):
    store = BaselineStore(tmp_path)
    path = store.path_for(FP, "tiny", "openvino")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(BaselineError) as info:
        store.find(FP, "tiny", "openvino")
    message = str(info.value)
    assert str(path) in message and problem in message
    assert "--cxr-update-baselines" in message
    with pytest.raises(BaselineError):
        store.write(make())
    assert path.read_text() == text


def test_a_file_moved_to_another_machine_folder_is_an_error(tmp_path):
    store = BaselineStore(tmp_path)
    _, path = store.write(make())
    moved = tmp_path / "other-machine" / "tiny" / "openvino.json"
    moved.parent.mkdir(parents=True)
    os.replace(path, moved)
    with pytest.raises(BaselineError, match="must not be moved"):
        store.load(moved)


def test_records_lists_every_file_with_errors_in_place(tmp_path):
    store = BaselineStore(tmp_path)
    store.write(make())
    store.write(make(backend="eager"))
    bad = store.path_for(FP, "tiny", "compile")
    bad.write_text("{")
    records = dict(store.records())
    assert isinstance(records[bad], BaselineError)
    assert {p.stem for p, r in records.items() if isinstance(r, Baseline)} == {"eager", "openvino"}


def test_read_baseline_names_a_missing_file(tmp_path):
    with pytest.raises(BaselineError, match="cannot be read"):
        read_baseline(tmp_path / "nope.json")


def test_model_key():
    assert model_key("tiny") == "tiny"
    assert model_key("/ckpt/my model", "checkpoint", "abcdef0123456789") == "my-model-abcdef01"


# ---- parallel writers ------------------------------------------------------------------------
def _writer(root, worker, count):
    store = BaselineStore(root)
    for i in range(count):
        store.write(make(scale=1.0 + worker / 10 + i / 1000))


def _reader(root, count, errors):
    store = BaselineStore(root)
    path = store.path_for(FP, "tiny", "openvino")
    for _ in range(count):
        if path.exists():
            try:
                store.load(path)
            except BaselineError as exc:  # a half-written file would land here
                errors.put(str(exc))


def test_parallel_writers_never_corrupt_the_store(tmp_path):
    # fork where there is one (fast: no re-import of torch through the package), else spawn
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    errors = context.Queue()
    workers = [context.Process(target=_writer, args=(tmp_path, w, 40)) for w in range(4)]
    workers += [context.Process(target=_reader, args=(tmp_path, 400, errors)) for _ in range(2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    assert errors.empty()
    store = BaselineStore(tmp_path)
    final = store.find(FP, "tiny", "openvino").baseline
    written = {
        replace(make(scale=1.0 + w / 10 + i / 1000)).samples_s for w in range(4) for i in range(40)
    }
    assert final.samples_s in {tuple(round(v, 7) for v in s) for s in written}
    leftovers = [p.name for p in (tmp_path / FP / "tiny").iterdir() if p.name != "openvino.json"]
    assert leftovers == []


def test_writes_wait_for_the_store_lock(tmp_path):
    from filelock import FileLock

    store = BaselineStore(tmp_path, lock_timeout=0.2)
    store.write(make())
    # filelock locks are re-entrant per object only: the store's own FileLock must wait
    with (
        FileLock(str(tmp_path / ".cxrperf.lock")),
        pytest.raises(BaselineError, match="held the store lock"),
    ):
        BaselineStore(tmp_path, lock_timeout=0.2).write(make(scale=2.0))
    assert store.find(FP, "tiny", "openvino").baseline.samples_s == make().samples_s


def test_a_pre_class_file_of_this_host_is_found_and_migrated(tmp_path):
    from pytest_cxrperf.gate.baseline_migration import migrate
    from pytest_cxrperf.machine import MachineClass

    here = MachineClass("amd", 25, 17, ("avx2",), 2, 2, "env-a")
    store = BaselineStore(tmp_path)
    legacy = replace(make(), schema_version=2, environment="env-a")
    path = store.path_for(FP, "tiny", "openvino")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**legacy.to_json(), "schema_version": 2}))
    other = store.path_for("another-host-2c-t2-00000000", "tiny", "eager")
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps({**make("eager", "another-host-2c-t2-00000000").to_json(),
                                 "schema_version": 2}))  # fmt: skip
    found = store.find(here, "tiny", "openvino", legacy_fingerprint=FP)
    assert found.baseline is not None and "pre-class layout" in found.note
    assert store.find(here, "tiny", "openvino", legacy_fingerprint="other").baseline is None
    done = migrate(store, lambda threads: replace(here, threads=threads), lambda threads: FP)
    moved = {m.path.name: m for m in done}
    assert moved["openvino.json"].target == tmp_path / here.key / "tiny" / "openvino.json"
    assert moved["eager.json"].target is None and "another host" in moved["eager.json"].reason
    assert not path.exists()
    again = store.find(here, "tiny", "openvino")
    assert again.baseline.schema_version == SCHEMA_VERSION and not again.note
    assert again.baseline.samples_s == legacy.samples_s


def test_merged_sessions_remember_where_each_begins_and_the_gate_reads_them(tmp_path):
    from pytest_cxrperf.cli.baselines import merge_sessions

    merged = merge_sessions([make(n=5), make(n=7), merge_sessions([make(n=3), make(n=4)])])
    assert merged.sessions == 4 and merged.session_rounds == (5, 7, 3, 4)
    assert len(merged.samples_s) == 19 and merged.timings().session_rounds == (5, 7, 3, 4)
    store = BaselineStore(tmp_path)
    _, path = store.write(merged)
    assert store.load(path).session_rounds == (5, 7, 3, 4)
    # an older merged file without the counts: the sessions are unknown, not guessed
    older = replace(merged, session_rounds=())
    assert merge_sessions([older, make(n=2)]).session_rounds == ()
    assert older.timings().session_rounds == ()


@pytest.mark.parametrize("counts", [[5, 7], [0, 5], ["5"], [19, -0]])
def test_session_rounds_that_do_not_add_up_are_refused(tmp_path, counts):
    data = make(n=5).to_json()
    data["settings"]["session_rounds"] = counts
    with pytest.raises(BaselineError, match="session_rounds"):
        Baseline.from_json(data, "x.json")


def test_a_new_library_release_is_named_where_only_the_environment_differs(tmp_path, monkeypatch):
    """A fresh install that resolves a newer transformers is another environment, so another
    class: the hint must say which library moved, not only two hashes."""
    from pytest_cxrperf.gate import baselines
    from pytest_cxrperf.machine import MachineClass

    now = {"torch": "2.13.0+cpu", "transformers": "5.25.0", "pytest-cxrperf": "0.2.0"}
    monkeypatch.setattr(baselines, "library_versions", lambda: now)
    monkeypatch.setattr(baselines, "environment_id", lambda: "py3.11-torch2.13.0-new")
    here = MachineClass("amd", 25, 17, ("avx2",), 2, 1, "py3.11-torch2.13.0-new")
    stored = replace(here, environment="py3.10-torch2.13.0-old")
    recorded = replace(
        make(fingerprint=stored.key, machine_class=stored.to_dict()),
        libraries={"torch": "2.13.0+cpu", "transformers": "5.24.0", "nncf": "3.4.0"},
    )
    store = BaselineStore(tmp_path)
    store.write(recorded)
    found = store.find(here, "tiny", "openvino")
    assert found.baseline is None
    assert found.differences == (
        "environment py3.10-torch2.13.0-old (this: py3.11-torch2.13.0-new; python 3.10 (this: "
        "3.11); nncf 3.4.0 (this: absent); transformers 5.24.0 (this: 5.25.0))",
    )
    # a class that is not this process's own (CXRPERF_CPUINFO dry runs aside, a test's) names
    # no libraries it cannot know
    elsewhere = replace(here, environment="py3.11-torch2.13.0-other")
    assert store.find(elsewhere, "tiny", "openvino").differences == (
        "environment py3.10-torch2.13.0-old (this: py3.11-torch2.13.0-other; python 3.10 (this: "
        "3.11))",
    )


def test_an_environment_without_a_python_prefix_names_no_python_version():
    from pytest_cxrperf.machine import MachineClass, class_differences

    here = MachineClass("amd", 25, 17, ("avx2",), 2, 1, "py3.11-torch2.13.0-new")
    assert class_differences(here, replace(here, environment="")) == [
        "environment unrecorded (this: py3.11-torch2.13.0-new)"
    ]
