"""The results store: find result files, load them, merge them without loss or duplication.

A result's identity is (run_id, scenario, kernel release, killer, testbed host,
started_ns). The same result met twice (the same bundle merged twice, a file
copied to two runners' directories) counts once. Two *different* files with one
identity are a conflict: both are reported and the more complete one is kept,
so the outcome does not depend on the order of the inputs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chaos.report.typecheck import check_result
from chaos.result import Result, Verdict, result_from_dict
from chaos.verdict import judge

Identity = tuple[str, str, str, str, str, int]


@dataclass(frozen=True)
class Unreadable:
    """An input that could not be used; ``problem`` is one line for the reader."""

    path: str
    problem: str


@dataclass(frozen=True)
class Loaded:
    """One result and the verdict the report shows for it."""

    result: Result
    verdict: Verdict
    judged_here: bool  # the file carried no verdict, so chaos.verdict.judge computed it

    @property
    def identity(self) -> Identity:
        return identity(self.result)


@dataclass
class Store:
    results: list[Loaded] = field(default_factory=list)  # sorted by identity, unique
    unreadable: list[Unreadable] = field(default_factory=list)  # sorted by path
    conflicts: list[Identity] = field(default_factory=list)  # identities whose files disagree


def identity(result: Result) -> Identity:
    return (result.run_id, result.scenario, result.kernel.release, result.killer.name,
            result.testbed.host, result.started_ns)


def verdict_of(result: Result) -> tuple[Verdict, bool]:
    """The stored verdict, or a freshly judged one when the file has none."""
    v = result.verdict
    if v.passed or v.reasons or v.details:
        reasons = list(v.reasons) or list(dict.fromkeys(d.code for d in v.details))
        return Verdict(passed=v.passed, reasons=reasons, details=list(v.details)), False
    return judge(result), True


def load(inputs: Sequence[Path]) -> Store:
    """Load every result under ``inputs`` (files, or directories searched recursively)."""
    loaded: dict[str, Loaded] = {}
    bad: dict[str, Unreadable] = {}
    for path, explicit in _candidates(inputs):
        key = os.path.realpath(path)
        if key in bad or key in loaded:
            continue
        outcome = _read(path, explicit)
        if isinstance(outcome, Unreadable):
            bad[key] = outcome
        elif outcome is not None:
            loaded[key] = outcome
    by_identity: dict[Identity, dict[str, Loaded]] = {}
    for item in loaded.values():
        by_identity.setdefault(item.identity, {}).setdefault(item.result.to_json(), item)
    store = Store(unreadable=sorted(bad.values(), key=lambda u: (u.path, u.problem)))
    for ident in sorted(by_identity):
        copies = by_identity[ident]
        if len(copies) > 1:
            store.conflicts.append(ident)
        store.results.append(copies[max(copies, key=lambda t: (len(t), t))])
    return store


def _candidates(inputs: Iterable[Path]) -> Iterable[tuple[Path, bool]]:
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):  # does not follow symlinked directories
                dirs.sort()
                for name in sorted(files):
                    if name.endswith(".json") and not name.startswith("."):
                        yield Path(root) / name, False
        else:
            yield path, True


# What a file cut inside its last value leaves after the parser's error: "0." of "0.5",
# "tr" of "true"
_PARTIAL_TOKEN = re.compile(r"[-+.eE\d]*|t(r(ue?)?)?|f(a(l(se?)?)?)?|n(u(ll?)?)?")


def _read(path: Path, explicit: bool) -> Loaded | Unreadable | None:
    """A result, a reason it is unreadable, or None for a JSON file that is not a result."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return Unreadable(str(path), "no such file or directory")
    except (OSError, UnicodeDecodeError) as exc:
        return Unreadable(str(path), _one_line(exc))
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        cut = (exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
               or _PARTIAL_TOKEN.fullmatch(text[exc.pos:].rstrip()) is not None)
        problem = "truncated JSON" if cut else "not valid JSON"
        return Unreadable(str(path), f"{problem}: {_one_line(exc)}")
    except RecursionError:
        return Unreadable(str(path), "JSON nested too deeply")
    if not (isinstance(raw, dict) and "schema" in raw and "scenario" in raw):
        return Unreadable(str(path), "not a result file (no 'schema' and 'scenario')") \
            if explicit else None
    try:
        result = result_from_dict(raw)
        check_result(result)
        verdict, judged = verdict_of(result)
    except Exception as exc:  # any malformed file is named, never fatal
        return Unreadable(str(path), _one_line(exc))
    return Loaded(result, verdict, judged)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
