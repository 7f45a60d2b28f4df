"""The backend registry: one path (entry points, built-ins included), imported only when used."""

import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest

from pytest_cxrperf.backends import registry
from pytest_cxrperf.backends.base import Backend
from pytest_cxrperf.backends.registry import backend_names, get_backend_class
from pytest_cxrperf.errors import BackendUnavailable


class Fine(Backend):
    name = "fine"
    precision = "fp32"


class Nameless(Backend):
    precision = "fp32"


class Misnamed(Backend):
    name = "other"
    precision = "fp32"


def point(name, value):
    return EntryPoint(name, value, registry.ENTRY_POINT_GROUP)


@pytest.fixture
def installed(monkeypatch):
    """A fresh registry whose installed entry points are the given ones."""
    monkeypatch.setattr(registry, "_registry", {})
    monkeypatch.setattr(registry, "_entry_point_errors", {})

    def install(*points):
        monkeypatch.setattr(registry, "entry_points", lambda group: list(points))

    return install


def test_listing_imports_nothing(installed):
    installed(point("eager", "no_such_module_anywhere:Eager"), point("fine", f"{__name__}:Fine"))
    assert backend_names() == ["eager", "fine"]  # eager first, and no import was tried
    assert "no_such_module_anywhere" not in sys.modules
    assert get_backend_class("fine") is Fine


def test_a_broken_entry_point_names_its_cause_and_spares_the_others(installed):
    installed(
        point("broken", "no_such_module_anywhere:Thing"),
        point("plain", f"{__name__}:point"),
        point("renamed", f"{__name__}:Misnamed"),
        point("fine", f"{__name__}:Fine"),
    )
    with pytest.raises(
        BackendUnavailable, match="entry point no_such_module_anywhere:Thing failed"
    ):
        get_backend_class("broken")
    with pytest.raises(BackendUnavailable, match="is not a Backend subclass"):
        get_backend_class("plain")
    with pytest.raises(BackendUnavailable, match="names its backend 'other', not 'renamed'"):
        get_backend_class("renamed")
    assert get_backend_class("fine") is Fine
    with pytest.raises(BackendUnavailable, match="failed to import"):  # remembered, not retried
        get_backend_class("broken")


def test_a_nameless_class_takes_its_entry_point_name(installed, monkeypatch):
    monkeypatch.setattr(Nameless, "name", "")
    installed(point("given", f"{__name__}:Nameless"))
    assert get_backend_class("given") is Nameless and Nameless.name == "given"


def test_unknown_names_list_the_known_and_say_where_backends_come_from(installed):
    installed(point("fine", f"{__name__}:Fine"))
    with pytest.raises(BackendUnavailable) as info:
        get_backend_class("fast")
    assert "unknown backend 'fast'; known backends: fine" in str(info.value)
    assert "'pytest_cxrperf.backends'" in str(info.value)


def test_a_conftest_registration_takes_precedence(installed):
    installed(point("fine", "no_such_module_anywhere:Fine"))
    registry.register_backend(Fine)
    assert get_backend_class("fine") is Fine  # the entry point is never imported
    assert backend_names() == ["fine"]


def test_every_built_in_comes_from_its_entry_point():
    """The installed package names each built-in once, under its own name."""
    for name in backend_names():
        assert get_backend_class(name).name == name
    assert {"eager", "openvino", "compile-int8"} <= set(backend_names())


def test_base_registry_and_precision_import_without_torch():
    """Listing and checking backends happens before any model is loaded: these three modules
    must not pull torch in (a fresh interpreter, since this one may have torch already)."""
    code = (
        "import sys, pytest_cxrperf.backends.base, pytest_cxrperf.backends.registry, "
        "pytest_cxrperf.backends.precision; assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_reference_is_one_name():
    """gate.decision and settings read the registry's REFERENCE_BACKEND, never their own."""
    from pytest_cxrperf.gate import decision
    from pytest_cxrperf.settings import build_settings

    assert decision.REFERENCE_BACKEND is registry.REFERENCE_BACKEND
    assert decision.CONTROL_EAGER == registry.REFERENCE_BACKEND
    settings = build_settings(lambda name: None, lambda name: None)
    assert [spec.name for spec in settings.backends] == [registry.REFERENCE_BACKEND]
