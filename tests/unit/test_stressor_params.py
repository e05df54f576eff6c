"""Stressor parameters: typed, validated before anything starts."""

from __future__ import annotations

import pytest

from chaos import stressors
from chaos.scenario import SpecError


def test_anon_hog_defaults_and_command() -> None:
    p = stressors.parse("anon_hog", {"size_mib": 100, "rate_mib_s": 50})
    assert p.size_mib == 100 and p.rate_mib_s == 50.0 and p.chunk_mib == 8
    argv = stressors.command("anon_hog", {"size_mib": 100})
    assert argv[1:3] == ["-m", "chaos.stressors.anon_hog"] and "100" in argv


@pytest.mark.parametrize("raw, message", [
    ({"size_mib": -1}, "size_mib must be > 0"),
    ({"size_mib": 0}, "size_mib must be > 0"),
    ({"rate_mib_s": -5}, "rate_mib_s must be >= 0"),
    ({"size_mib": "big"}, "is not a valid int"),
    ({"size_mib": 1.5}, "is not a valid int"),
    ({"colour": "red"}, "unknown parameter(s) colour"),
])
def test_bad_params(raw: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError) as err:
        stressors.parse("anon_hog", raw)  # type: ignore[arg-type]
    assert message in str(err.value)


def test_unknown_stressor() -> None:
    with pytest.raises(SpecError, match="unknown stressor 'nope' \\(available: anon_hog"):
        stressors.load("nope")
