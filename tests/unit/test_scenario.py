"""Scenario specs: JSON round trips and one-line errors for malformed specs."""

from __future__ import annotations

import json

import pytest

from chaos import catalogue
from chaos.scenario import KillerSpec, Scenario, SpecError, StressorSpec


def spec() -> Scenario:
    return catalogue.spike(KillerSpec(name="earlyoom", options={"m": 10}))


def test_round_trip_is_lossless() -> None:
    s = spec()
    again = Scenario.from_json(s.to_json())
    assert again == s
    assert again.to_json() == s.to_json()


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("stressors"), "needs 'killer' and 'stressors'"),
    (lambda d: d.update(stressors=[]), "no stressors"),
    (lambda d: d["stressors"][0].update(victim=False), "no stressor is marked as the victim"),
    (lambda d: d["stressors"][0].update(cgroup="../escape"), "bad cgroup path"),
    (lambda d: d["stressors"][0].update(runtime="lxc"), "unknown runtime"),
    (lambda d: d["stressors"][0]["params"].update(size=[1]), "must be a scalar"),
    (lambda d: d.update(bogus=1), "unknown field(s) bogus"),
    (lambda d: d["danger"].update(mem_available_pct=150), "between 0 and 100"),
    (lambda d: d.update(deadline_s=0), "deadline_s must be > 0"),
    (lambda d: d.update(run_id="a b"), "run id"),
    (lambda d: d.update(schema=99), "schema"),
    (lambda d: d["bystanders"].append(dict(d["bystanders"][0])), "used twice"),
])
def test_malformed_specs_get_one_line(mutate, message: str) -> None:
    raw = json.loads(spec().to_json())
    mutate(raw)
    with pytest.raises(SpecError) as err:
        Scenario.from_json(json.dumps(raw))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_not_json() -> None:
    with pytest.raises(SpecError, match="not valid JSON"):
        Scenario.from_json("{")


def test_victims_and_who_should_kill() -> None:
    s = spec()
    assert [v.instance for v in s.victims] == ["hog"]
    assert s.who_should_kill == "earlyoom"
    s2 = Scenario(id="x", run_id="r", killer=KillerSpec(), expected_killer="kernel",
                  stressors=(StressorSpec(name="anon_hog", instance="a", cgroup="w/a"),))
    assert s2.who_should_kill == "kernel"
