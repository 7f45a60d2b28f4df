"""Which backends a run's collected tests use: the campaigns' members, in the asked order."""

from pytest_cxrperf.collected import Collected, collected_backends
from pytest_cxrperf.settings import BackendSpec

EAGER, OV, COMPILE, SLOW = (BackendSpec("eager"), BackendSpec("openvino"),
                            BackendSpec("compile"), BackendSpec("openvino", slow=1.5))  # fmt: skip
LATENCY = frozenset({"cxr_latency"})
THROUGHPUT = frozenset({"cxr_throughput"})
EQUIVALENCE = frozenset({"cxr_equivalence"})


def test_each_campaign_gets_the_backends_of_its_own_tests_in_the_asked_order():
    tests = [
        (OV, EQUIVALENCE), (COMPILE, LATENCY), (OV, LATENCY), (EAGER, LATENCY),
        (OV, THROUGHPUT), (EAGER, THROUGHPUT), (OV, LATENCY),
    ]  # fmt: skip
    found = collected_backends(tests, asked=[EAGER, OV, COMPILE])
    assert found.latency == (EAGER, OV, COMPILE)
    assert found.throughput == (EAGER, OV)
    assert found.used == (EAGER, OV, COMPILE)


def test_a_spec_not_asked_for_comes_after_the_asked_ones():
    found = collected_backends([(SLOW, LATENCY), (OV, LATENCY)], asked=[OV])
    assert found.latency == (OV, SLOW)


def test_nothing_collected_is_empty_everywhere():
    assert collected_backends([], asked=[EAGER]) == Collected()
    only_equivalence = collected_backends([(OV, EQUIVALENCE)], asked=[EAGER, OV])
    assert only_equivalence.used == (OV,) and not only_equivalence.latency
    assert not only_equivalence.throughput
