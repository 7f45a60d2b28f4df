import pytest

from pytest_cxrperf.errors import SettingsError
from pytest_cxrperf.settings import (
    BackendSpec,
    build_settings,
    parse_backend_request,
    parse_tolerances,
)


def settings_from(cli=None, ini=None):
    cli, ini = cli or {}, ini or {}
    return build_settings(
        lambda n: cli.get(n), lambda n: ini.get(n, [] if n == "cxr_tolerances" else "")
    )


def test_defaults():
    s = settings_from()
    assert s.backend_request == "eager"
    assert [b.name for b in s.backends] == ["eager"]
    assert s.rounds == 400 and s.warmup == 1 and s.max_new_tokens == 32 and s.threads >= 1


def test_cli_overrides_ini():
    s = settings_from({"cxr_rounds": "7"}, {"cxr_rounds": "4", "cxr_warmup": "0"})
    assert s.rounds == 7
    assert s.warmup == 0


def test_all_and_lists():
    assert parse_backend_request("all") == ("all", ())
    _, specs = parse_backend_request("eager, compile")
    assert [s.name for s in specs] == ["eager", "compile"]


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "empty"),
        ("eager,,compile", "empty entry"),
        ("all,eager", "cannot be combined"),
        ("eager,eager", "twice"),
        ("eager+fast=2", "unknown modifier"),
        ("eager+slow=abc", "not a number"),
        ("eager+slow=0.5", "between 1 and 100"),
        ("eager compile", "cannot parse"),
    ],
)
def test_bad_backend_requests(value, message):
    with pytest.raises(SettingsError, match=message):
        parse_backend_request(value)


def test_slow_spec():
    spec = BackendSpec.parse("eager+slow=1.25")
    assert spec == BackendSpec("eager", 1.25)
    assert spec.label == "eager+slow=1.25"
    assert BackendSpec.parse("eager").label == "eager"


@pytest.mark.parametrize(
    "cli, message",
    [
        ({"cxr_rounds": "0"}, "--cxr-rounds=0 must be at least 1"),
        ({"cxr_rounds": "five"}, "not an integer"),
        ({"cxr_rounds": "2"}, "needs at least 3 rounds"),  # 3 vs 3 could never fail
        ({"cxr_threads": "-2"}, "--cxr-threads"),
        ({"cxr_max_new_tokens": "0"}, "--cxr-max-new-tokens"),
        ({"cxr_warmup": "-1"}, "--cxr-warmup"),
        ({"cxr_session_noise": "loud"}, "--cxr-session-noise='loud' is not a number"),
        ({"cxr_session_noise": "1.5"}, "--cxr-session-noise='1.5' must be above 0 and below 1"),
        ({"cxr_session_noise": "-3%"}, "--cxr-session-noise='-3%' must be above 0"),
    ],
)
def test_bad_numbers(cli, message):
    with pytest.raises(SettingsError, match=message):
        settings_from(cli)


def test_tolerances():
    assert parse_tolerances(["bf16.prefill_rel_err = 0.08", "# comment", ""]) == {
        "bf16.prefill_rel_err": 0.08
    }
    with pytest.raises(SettingsError, match="must look like"):
        parse_tolerances(["prefill_rel_err 0.08"])
    with pytest.raises(SettingsError, match="not a number"):
        parse_tolerances(["bf16.prefill_rel_err = lots"])


def test_session_noise_default_percent_and_zero():
    assert settings_from().session_noise == 0.03
    assert settings_from({"cxr_session_noise": "1.5%"}).session_noise == pytest.approx(0.015)
    assert settings_from(ini={"cxr_session_noise": "0.02"}).session_noise == 0.02
    assert settings_from({"cxr_session_noise": "0"}).session_noise == 0.0  # one run trusted
    assert settings_from({"cxr_session_noise": "0%"}).session_noise == 0.0
