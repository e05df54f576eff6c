"""Property-based bad input: malformed options, specs and killer specs get one line, never a crash.

For every generated input: either it is accepted, or the error is the
project's own (SpecError / SettingsError / exit status 2) with one line and no
traceback. The command-line cases are chosen so that nothing could start even
if parsing were wrong (each has at least one invalid value), and a run that
got as far as starting anything would leave a run record, which is checked.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos import cli, targets
from chaos.scenario import KillerSpec, Scenario, SpecError, StressorSpec, scenario_from_dict
from chaos.settings import SettingsError, resolve

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20)

VALID = json.loads(Scenario(
    id="x", run_id="r", killer=KillerSpec(),
    stressors=(StressorSpec(name="anon_hog", instance="hog", cgroup="workload/hog"),)).to_json())


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(sorted(VALID)), value=json_values)
def test_spec_with_any_field_replaced_is_accepted_or_one_line(key: str, value: object) -> None:
    raw = dict(VALID)
    raw[key] = value
    try:
        scenario_from_dict(raw)
    except SpecError as exc:
        assert str(exc) and "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_any_json_document_is_accepted_or_one_line(value: object) -> None:
    try:
        scenario_from_dict(value)
    except SpecError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=40))
def test_killer_names_are_known_or_one_line(name: str) -> None:
    try:
        targets.load(KillerSpec(name=name))
    except (SpecError, targets.TargetError) as exc:
        assert str(exc) and "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(command=st.text(max_size=40))
def test_exec_specs_parse_or_one_line(command: str) -> None:
    try:
        t = targets.load(KillerSpec(name=f"exec:k={command}"))
    except (SpecError, targets.TargetError) as exc:
        assert "\n" not in str(exc)
    else:
        assert t is not None


BAD_VALUES = {
    "--kernel": st.text(min_size=1, max_size=12).filter(
        lambda s: "/" not in s and not s.startswith("linux-image-")
        and s not in ("6.1", "6.12", "6.1-rt", "6.12-rt", "6.1-cloud", "6.12-cloud")
        and not s.startswith("-")),
    "--vm-memory": st.one_of(st.integers(-10**6, 255).map(str), st.just("lots")),
    "--repeat": st.one_of(st.integers(-5, 0).map(str), st.just("x")),
    "--vm-silence": st.one_of(st.integers(1, 4).map(str), st.integers(3601, 10**6).map(str),
                              st.just("soon")),
    "--testbed": st.text(min_size=1, max_size=8).filter(
        lambda s: s not in ("vm", "local") and not s.startswith("-")),
    "--slo": st.text(max_size=20).filter(lambda s: not s.startswith("-")),
}


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_run_with_a_bad_option_exits_2_with_one_line(data: st.DataObject, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    option = data.draw(st.sampled_from(sorted(BAD_VALUES)))
    value = data.draw(BAD_VALUES[option])
    if option == "--slo":
        try:
            resolve({"slo": [value]}, None, environ={})
            return  # a valid SLO override: not bad input
        except SettingsError:
            pass
    monkeypatch.setenv("CHAOS_STATE", str(tmp_path / "state"))
    err = io.StringIO()
    with redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        raise SystemExit(cli.main(["run", option, value, "--results-dir",
                                   str(tmp_path / "results")]))
    assert exit_info.value.code == 2, err.getvalue()
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chaos: ")
    assert "Traceback" not in err.getvalue()
    assert not (tmp_path / "state").exists() and not (tmp_path / "results").exists()
