"""Rendering whole reports: matrix contents, details, determinism, merge, escaping, offline."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from chaos.report import add_cli, render
from chaos.report.samples import sample_result
from chaos.result import Event, Reason

ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "nav", "a", "h1", "h2", "h3",
    "h4", "main", "footer", "p", "section", "table", "thead", "tbody", "tr", "th", "td", "span",
    "ul", "li", "code", "article", "details", "summary", "pre", "div", "dl", "dt", "dd", "br",
    "strong", "svg", "g", "rect", "line", "path", "text", "circle"}


class Page(HTMLParser):
    """Elements with their attributes, the text inside each, and the document title."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[int] = []
        self.texts: dict[int, list[str]] = {}
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag not in ("meta", "br"):
            self.stack.append(len(self.elements) - 1)

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            i = self.stack.pop()
            if self.elements[i][0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for i in self.stack:
            self.texts.setdefault(i, []).append(data)

    def text_of(self, i: int) -> str:
        return " ".join(" ".join(self.texts.get(i, [])).split())

    def find(self, tag: str, **attrs: str) -> list[int]:
        return [i for i, (t, a) in enumerate(self.elements)
                if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())]

    @property
    def title(self) -> str:
        return self.text_of(self.find("title")[0])

    def text(self) -> str:
        return self.text_of(self.find("body")[0])


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def _bundle(root: Path) -> Path:
    """A night: two killers x two kernels, three repeats, one failing cell, one kernel OOM."""
    for rel in ("6.1.0-27-amd64", "6.12.57+deb12-amd64"):
        for rep in range(3):
            ok = sample_result(killer="earlyoom", release=rel, run_id=f"night-{rep}",
                               started_ns=rep, ttk_ms=300.0 + 100 * rep, seed=rep)
            ok.write(root / "runner-1" / rel / f"earlyoom-{rep}.json")
            slow = rel.startswith("6.12") and rep == 2
            og = sample_result(killer="oomguard", release=rel, run_id=f"night-{rep}",
                               started_ns=rep, ttk_ms=12_000.0 if slow else 200.0, seed=rep,
                               judged=not slow)
            og.write(root / "runner-2" / rel / f"oomguard-{rep}.json")
    return root


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return _bundle(tmp_path / "results")


def test_index_is_a_matrix_of_killers_by_kernels(bundle: Path, tmp_path: Path) -> None:
    summary = render([bundle], tmp_path / "out")
    assert summary.results == 12 and not summary.unreadable
    page = Page(summary.index.read_text())
    (table,) = page.find("table", class_="matrix")
    heads = [page.text_of(i) for i in page.find("th", scope="col")]
    assert heads == ["6.1.0-27-amd64 vm · tcg", "6.12.57+deb12-amd64 vm · tcg"]
    assert [page.text_of(i) for i in page.find("th", scope="row")] == ["earlyoom", "oomguard"]
    cells = [(page.elements[i][1]["class"], page.text_of(i))
             for i in page.find("td") if page.elements[i][1].get("class") in ("pass", "fail")]
    assert cells[0] == ("pass", "3/3 passed (100 %) time-to-kill p50 400 ms · p95 490 ms")
    assert cells[1] == ("pass", "3/3 passed (100 %) time-to-kill p50 400 ms · p95 490 ms")
    assert cells[2][0] == "pass"
    assert cells[3] == ("fail", "2/3 passed (67 %) time-to-kill p50 200 ms · p95 10,820 ms "
                                "SLOW_KILL")
    links = [a["href"] for _, a in page.elements if (a.get("href") or "").endswith("#tb-vm-tcg")]
    assert "6.12.57+deb12-amd64/oomguard.html#tb-vm-tcg" in links
    assert (tmp_path / "out" / "6.12.57+deb12-amd64" / "oomguard.html").is_file()


def test_detail_page_shows_verdicts_evidence_phases_and_charts(bundle: Path,
                                                                 tmp_path: Path) -> None:
    render([bundle], tmp_path / "out")
    page = Page((tmp_path / "out" / "6.12.57+deb12-amd64" / "oomguard.html").read_text())
    assert page.title == "oomguard on 6.12.57+deb12-amd64"
    text = page.text()
    assert "2/3 passed" in text
    assert "SLOW_KILL time-to-kill 12000 ms > SLO 10000 ms" in text  # judged by the report
    assert "evidence: slo_ms=10000, time_to_kill_ms=12000" in text
    assert "(judged by the report)" in text
    row = page.text_of(page.find("tr")[1])
    assert row.startswith("anon_hog 2/3 passed SLOW_KILL 200 ms / 10,820 ms (n=3) "
                          "140 ms / 10,760 ms (n=3) 60 ms / 60 ms (n=3)")
    charts = [page.elements[i][1]["aria-label"] or "" for i in page.find("svg", class_="timeline")]
    assert len([c for c in charts if "close-up" not in c]) == 3  # one timeline per run
    assert len([c for c in charts if "close-up" in c]) == 2  # not for the 12 s kill
    series = [a for t, a in page.elements if t == "path" and a.get("class") == "series"]
    assert series and all(a.get("d") for a in series)
    assert len(page.find("details")) >= 3 * 5  # events, system, config, 3 logs per run
    assert "MemTotal" in text and "earlyoom" not in text
    assert ("victim on CPU 40 ms, waiting for a CPU 15 ms (behind kswapd0 10 ms, flood 5.0 ms), "
            "asleep 5.0 ms") in text  # of 60 ms
    assert "vCPU time the host took 4.0 ms" in text


def test_glossary_defines_danger_phases_every_reason_code_and_charts(bundle: Path,
                                                                       tmp_path: Path) -> None:
    from chaos.verdict import REASONS

    render([bundle], tmp_path / "out")
    page = Page((tmp_path / "out" / "glossary.html").read_text())
    ids = {a.get("id") for _, a in page.elements}
    assert {"danger", "detect", "teardown", "recover", "time-to-kill", "charts"} <= ids
    assert set(REASONS) <= ids
    text = page.text()
    assert "mem_available_pct" in text  # danger comes from DangerSpec itself
    for meaning in REASONS.values():
        assert " ".join(meaning.split()) in text
    assert page.find("svg", class_="timeline")


def test_same_inputs_give_byte_identical_reports(bundle: Path, tmp_path: Path) -> None:
    render([bundle], tmp_path / "one")
    render([bundle], tmp_path / "two")
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


def test_output_does_not_depend_on_hash_seeds(bundle: Path, tmp_path: Path) -> None:
    code = "import sys; from pathlib import Path; from chaos.report import render; " \
           "render([Path(sys.argv[1])], Path(sys.argv[2]))"
    root = Path(__file__).resolve().parents[2]
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed,
               "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
        subprocess.run([sys.executable, "-c", code, str(bundle), str(tmp_path / seed)],
                       check=True, env=env, timeout=120)
    assert _files(tmp_path / "1") == _files(tmp_path / "2")


def test_merging_a_bundle_twice_renders_the_same_report(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    for f in bundle.rglob("*.json"):
        target = copy / f.relative_to(bundle)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.read_bytes())
    render([bundle], tmp_path / "once")
    render([bundle, bundle, copy], tmp_path / "twice")
    assert _files(tmp_path / "once") == _files(tmp_path / "twice")


def test_truncated_file_is_named_once_and_the_rest_is_rendered(
        bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    victim = next(iter(sorted(bundle.rglob("earlyoom-1.json"))))
    text = victim.read_text()
    victim.write_text(text[: len(text) // 3])
    summary = render([bundle], tmp_path / "out")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and str(victim) in err[0] and "truncated" in err[0]
    assert summary.results == 11
    assert [u.path for u in summary.unreadable] == [str(victim)]
    page = Page(summary.index.read_text())
    (box,) = page.find("section", id="unreadable")
    assert str(victim) in page.text_of(box)
    assert "2/2 passed" in page.text()


def test_pages_are_offline_and_self_contained(bundle: Path, tmp_path: Path) -> None:
    render([bundle], tmp_path / "out")
    for name, data in _files(tmp_path / "out").items():
        if not name.endswith(".html"):
            continue
        text = data.decode()
        assert not re.search(r"(?i)\b(https?|ftp):|//[a-z]", text.replace("://", ":"))
        assert "http://" not in text and "https://" not in text, name
        page = Page(text)
        tags = {t for t, _ in page.elements}
        assert tags <= ALLOWED_TAGS, (name, tags - ALLOWED_TAGS)
        assert not any(a.get("src") for _, a in page.elements)
        for _, a in page.elements:
            href = a.get("href")
            if href is not None:
                assert not re.match(r"(?i)^[a-z]+:", href) and not href.startswith("//")
                target = href.split("#")[0]
                if target:
                    assert (tmp_path / "out" / Path(name).parent / target).is_file(), href
        assert page.find("meta", **{"http-equiv": "Content-Security-Policy"})


EVIL = '<script>document.title="pwned"</script>'
ATTR = '" onmouseover="document.title=\'pwned\'" x="'
HOSTILE_KILLER = f"exec:{EVIL}{ATTR}"
HOSTILE_RELEASE = f"6.1{EVIL}/../x"


def _hostile(tmp_path: Path) -> Path:
    evil, attr = EVIL, ATTR
    r = sample_result(killer=HOSTILE_KILLER, release=HOSTILE_RELEASE, run_id="evil",
                      host=f"host{attr}", scenario=f"hog</details>{evil}")
    r.logs = {f"console{evil}": f"boot ok\n</details></pre>{evil}\n<!-- x -->"}
    r.killer.config = f"--prefer '{evil}'"
    r.system = {f"key{evil}": f"value{attr}"}
    r.series[f"psi{evil}"] = [1.0] * len(r.series["t_ns"])
    r.events.append(Event(r.t0_ns or 0, "signal", comm=attr, detail=f"</title>{evil}"))
    r.victims[0].instance = f"hog{evil}"
    r.verdict.passed = False
    r.verdict.reasons = [f"SLOW_KILL{evil}"]
    r.verdict.details = [Reason(f"SLOW_KILL{evil}", f"message{evil}",
                                {f"k{evil}": f"v{attr}"})]
    r.error = f"oops{evil}"
    r.write(tmp_path / "hostile" / "r.json")
    bad = tmp_path / "hostile" / f"{attr}{evil.replace('/', '')}.json"
    bad.write_text("{")
    return tmp_path / "hostile"


def test_hostile_strings_are_escaped_everywhere(tmp_path: Path) -> None:
    summary = render([_hostile(tmp_path)], tmp_path / "out")
    pages = [p for p in summary.pages if p.suffix == ".html"]
    assert len(pages) == 3
    for path in pages:
        assert path.resolve().is_relative_to((tmp_path / "out").resolve())
        page = Page(path.read_text())
        assert page.title in ("Reliability of userspace OOM killers", "Glossary",
                              f"{HOSTILE_KILLER} on {HOSTILE_RELEASE}")
        tags = {t for t, _ in page.elements}
        assert "script" not in tags and tags <= ALLOWED_TAGS
        for _, attrs in page.elements:
            assert not any(name.startswith("on") for name in attrs), attrs
            assert not (attrs.get("href") or "").lower().startswith("javascript")
        if path.name != "glossary.html":
            assert 'document.title="pwned"' in page.text()  # shown, as text
    detail = Page(next(p for p in pages if p.parent != summary.out_dir).read_text())
    summaries = [detail.text_of(i) for i in detail.find("summary")]
    assert any(s.startswith("log: console<script>") for s in summaries)
    pres = [detail.text_of(i) for i in detail.find("pre")]
    assert any("</details></pre><script>" in p for p in pres)


def test_stale_pages_of_an_earlier_render_are_removed(bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    render([bundle], out)
    (out / "mine.txt").write_text("not the report's")
    render([bundle / "runner-1"], out)
    assert not (out / "6.1.0-27-amd64" / "oomguard.html").exists()
    assert (out / "6.1.0-27-amd64" / "earlyoom.html").is_file()
    assert (out / "mine.txt").is_file()


def test_cli_renders_and_reports_unreadable_files_with_status_0(
        bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (bundle / "cut.json").write_text('{"schema": 1, "scenario": "x", "run_id": "')
    (tmp_path / "h1").mkdir()
    (tmp_path / "h2").mkdir()
    parser = argparse.ArgumentParser(prog="chaos")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", str(bundle), "-o", str(tmp_path / "out"),
                              "--history", str(tmp_path / "h1"), str(tmp_path / "h2")])
    assert args.history == [tmp_path / "h1", tmp_path / "h2"]
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert "cut.json" in captured.err and "12 results, 1 unreadable" in captured.out
    empty = parser.parse_args(["report", str(tmp_path / "nothing"), "-o", str(tmp_path / "o2")])
    assert empty.func(empty) == 1


def test_victim_table_gives_the_kernels_exit_and_when_the_harness_collected_it(
        tmp_path: Path) -> None:
    """fork_storm at 15061a4: the kernel recorded the exit 23 ms after danger (the end of
    time-to-kill), the harness collected the pidfd at +0.545 s; the table showed only the
    second, beside a time-to-kill of 23 ms."""
    r = sample_result(killer="oomguard", ttk_ms=23.0)
    (v,) = r.victims
    assert r.t0_ns is not None and v.exit_t_ns is not None
    v.kernel_exit_t_ns = r.t0_ns + 23_000_000
    v.exit_t_ns = r.t0_ns + 545_000_000
    r.write(tmp_path / "results" / "r.json")
    render([tmp_path / "results"], tmp_path / "out")
    (page_file,) = (tmp_path / "out").glob("*/oomguard.html")
    page = Page(page_file.read_text())
    rows = [page.text_of(i) for i in page.find("tr")]
    (head,) = [t for t in rows if t.startswith("victim ")]
    assert "signal at exit at collected at exit" in head
    (row,) = [t for t in rows if t.startswith("hog ")]
    assert "+0.023 +0.545" in row
    v.kernel_exit_t_ns = None  # not traced: the pidfd's time is all there is
    r.write(tmp_path / "results" / "r.json")
    render([tmp_path / "results"], tmp_path / "out")
    page = Page(page_file.read_text())
    (row,) = [page.text_of(i) for i in page.find("tr") if page.text_of(i).startswith("hog ")]
    assert "+0.545 +0.545" in row
