"""Helpers for running the real suite inside ``pytester`` sandboxes."""

import pytest

FAKE_BACKENDS = '''
from dataclasses import replace

from pytest_cxrperf.backends.base import Availability, Backend
from pytest_cxrperf.backends.registry import register_backend
from pytest_cxrperf.backends.torch_runner import TorchRunner


@register_backend
class MissingBackend(Backend):
    name = "missing"
    precision = "fp32"

    def availability(self):
        return Availability.no("missing needs the 'frobnicate' package: pip install frobnicate")


class WrongRunner(TorchRunner):
    """Says something else: every generated token is shifted by one."""

    def generate(self, inputs, max_new_tokens, **kwargs):
        result = super().generate(inputs, max_new_tokens, **kwargs)
        return replace(result, token_ids=[t + 1 for t in result.token_ids])

    def score(self, inputs, target_ids):
        return super().score(inputs, target_ids).roll(1, dims=-1)


@register_backend
class WrongBackend(Backend):
    name = "wrong"
    precision = "fp32"

    def prepare(self, reference, example):
        return WrongRunner(reference.model, reference.processor)
'''


@pytest.fixture(autouse=True)
def _a_fresh_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sandbox runs behave like a developer's own: on GitHub Actions each would append its report
    to the job's summary, and under this suite's own pytest-xdist the worker's variables would
    make pytest-benchmark in the sandbox believe it is an xdist worker and switch itself off."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """An empty sandbox with a conftest of fake backends: the plugin's built-in suite is collected
    there whenever a cxr option is given, as in any repository that installs the plugin."""
    pytester.makeconftest(FAKE_BACKENDS)
    return pytester


FAST = [
    "--cxr-suite",
    "--cxr-rounds=3",
    "--cxr-warmup=0",
    "--cxr-max-new-tokens=40",
    "-p",
    "no:cacheprovider",
]
