"""The precision table: one list of precisions, metrics and ranges that the others read."""

from dataclasses import fields

from pytest_cxrperf.backends import cpu_support
from pytest_cxrperf.backends.precision import (
    DEFAULT_TOLERANCES,
    INT8_PRECISIONS,
    METRICS,
    PRECISIONS,
    TOLERANCE_RANGES,
)
from pytest_cxrperf.gate import equivalence
from pytest_cxrperf.gate.equivalence import Tolerances


def test_every_default_tolerance_names_each_metric_once_and_lies_in_its_range():
    for precision in PRECISIONS:
        values = DEFAULT_TOLERANCES[precision]
        assert tuple(values) == METRICS, precision
        for metric, value in values.items():
            low, high = TOLERANCE_RANGES[metric]
            assert value >= low and (high is None or value <= high), (precision, metric)


def test_the_metrics_are_the_tolerances_fields():
    assert METRICS == tuple(f.name for f in fields(Tolerances)) == tuple(TOLERANCE_RANGES)


def test_the_int8_precisions_are_precisions():
    assert set(INT8_PRECISIONS) < set(PRECISIONS)


def test_the_readers_hold_no_list_of_their_own():
    assert equivalence.DEFAULT_TOLERANCES is DEFAULT_TOLERANCES
    assert equivalence.METRICS is METRICS
    assert cpu_support.INT8_PRECISIONS is INT8_PRECISIONS
