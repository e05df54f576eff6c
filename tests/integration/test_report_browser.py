"""A real browser opens the report: charts render, nothing errs, hostile strings stay inert.

Needs Debian's ``chromium``. Without it the tests skip, unless CHAOS_REQUIRE_ALL=1,
where a missing browser is a failure.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from chaos.report import render
from chaos.report.samples import sample_result
from chaos.result import Event, Reason
from chaos.skips import skip_or_fail

pytestmark = [pytest.mark.integration, pytest.mark.browser]

EVIL = '<script>document.title="pwned"</script>'
ATTR = '" onmouseover="document.title=\'pwned\'" x="'
IMG = '<img src=x onerror="document.title=\'pwned\'">'
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0")
CONSOLE_ERROR = re.compile(r"CONSOLE|Uncaught|Refused to (execute|load|apply)", re.IGNORECASE)


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    skip_or_fail("chromium is not installed (Debian: apt-get install -y chromium)")


class _Dom(HTMLParser):
    """Elements and the document's title (the first <title>, the one in <head>)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.title = ""
        self._title = "before"
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag == "title" and self._title == "before":
            self._title = "in"

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._title == "in":
            self._title = "done"

    def handle_data(self, data: str) -> None:
        if self._title == "in":
            self.title += data


def _run(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE_ERROR.search(line)]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    for rel in ("6.1.0-27-amd64", "6.12.57+deb12-amd64"):
        for rep in range(2):
            for killer in ("earlyoom", "oomguard", "kernel"):
                slow = killer == "oomguard" and rel.startswith("6.12") and rep == 1
                sample_result(killer=killer, release=rel, run_id=f"night-{rep}", started_ns=rep,
                              ttk_ms=12_000.0 if slow else 250.0 + 80 * rep, seed=rep,
                              judged=not slow).write(root / "in" / f"{killer}-{rel}-{rep}.json")
    hostile = sample_result(killer=f"evil{EVIL}{ATTR}", release="6.1.0-27-amd64",
                            scenario=f"hog</details>{EVIL}", run_id="evil")
    hostile.logs = {f"console{EVIL}": f"ok\n</details></pre>{EVIL}{IMG}\n"}
    hostile.series[f"psi{IMG}"] = [2.0] * len(hostile.series["t_ns"])
    hostile.events.append(Event(hostile.t0_ns or 0, "signal", comm=ATTR, detail=f"</title>{EVIL}"))
    hostile.verdict.passed = False
    hostile.verdict.reasons = ["SLOW_KILL"]
    hostile.verdict.details = [Reason("SLOW_KILL", f"slow{EVIL}", {f"k{IMG}": f"v{ATTR}"})]
    hostile.write(root / "in" / "hostile.json")
    (root / "in" / "cut.json").write_text('{"schema": 1, "scenario": "cut", "run_id": "x')
    summary = render([root / "in"], root / "out")
    assert summary.results == 13 and len(summary.unreadable) == 1
    return root / "out"


def _detail(out: Path, killer_prefix: str) -> Path:
    (page,) = [p for p in out.rglob("*.html") if p.name.startswith(killer_prefix)
               and p.parent.name == "6.1.0-27-amd64"]
    return page


def test_index_and_detail_render_with_charts_and_no_console_errors(
        chromium: str, report: Path, tmp_path: Path) -> None:
    for page, shot in ((report / "index.html", "index.png"),
                       (_detail(report, "oomguard"), "detail.png")):
        dom = _run(chromium, tmp_path / "profile", "--dump-dom", page.as_uri())
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert _console_errors(dom.stderr) == []
        parsed = _Dom(dom.stdout)
        tags = [t for t, _ in parsed.elements]
        assert "table" in tags and "script" not in tags
        if page.name != "index.html":
            charts = [a for t, a in parsed.elements if t == "svg" and a.get("class") == "timeline"]
            assert len(charts) >= 2
            series = [a.get("d") or "" for t, a in parsed.elements
                      if t == "path" and a.get("class") == "series"]
            assert series and all(re.match(r"^M[\d.]+ [\d.]+L", d) for d in series)
        target = tmp_path / shot
        run = _run(chromium, tmp_path / "profile", f"--screenshot={target}",
                   "--window-size=1400,1000", "--hide-scrollbars", page.as_uri())
        assert run.returncode == 0 and target.is_file(), run.stderr[-2000:]
        assert _console_errors(run.stderr) == []
        assert _png_size(target) == (1400, 1000)
        assert target.stat().st_size > 20_000  # a blank page compresses to a few KB


def test_hostile_strings_do_not_execute_in_the_browser(
        chromium: str, report: Path, tmp_path: Path) -> None:
    for page in (report / "index.html", _detail(report, "evil")):
        dom = _run(chromium, tmp_path / "profile", "--dump-dom", page.as_uri())
        assert dom.returncode == 0, dom.stderr[-2000:]
        parsed = _Dom(dom.stdout)
        assert parsed.title in ("Reliability of userspace OOM killers",
                                f"evil{EVIL}{ATTR} on 6.1.0-27-amd64")
        for tag, attrs in parsed.elements:
            assert tag not in ("script", "img", "iframe", "object", "embed")
            assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert _console_errors(dom.stderr) == []
        assert "&lt;script&gt;document.title" in dom.stdout  # shown as text
