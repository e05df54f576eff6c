"""The pages' Jinja templates and style sheet (kept in code: nothing to package or fetch).

Autoescaping is on for every template; only ``Markup`` built by ``svg``/``markup``
and the constant style sheet are inserted unescaped.
"""

from __future__ import annotations

CSS = """
:root { --pass: #dcfce7; --pass-ink: #14532d; --fail: #fee2e2; --fail-ink: #991b1b;
  --ink: #111827; --muted: #6b7280; --line: #d1d5db; --bg: #ffffff; --panel: #f9fafb; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
  color: var(--ink); background: var(--bg); margin: 0; }
header, main, footer { max-width: 1400px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 16px; }
nav { font-size: 13px; color: var(--muted); }
nav a { margin-right: 12px; }
h1 { font-size: 22px; margin: 8px 0 4px; word-break: break-word; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; word-break: break-word; }
h3 { font-size: 16px; margin: 24px 0 6px; word-break: break-word; }
h4 { font-size: 14px; margin: 0 0 6px; word-break: break-word; }
a { color: #1d4ed8; }
.muted, .note { color: var(--muted); }
.summary { color: var(--muted); margin: 0 0 12px; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { border: 1px solid var(--line); padding: 5px 8px; vertical-align: top; text-align: left; }
th { background: var(--panel); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.matrix td { min-width: 190px; }
table.matrix th.killer { white-space: nowrap; word-break: break-all; }
.col-testbed { display: block; font-weight: normal; color: var(--muted); font-size: 12px; }
td.pass { background: var(--pass); color: var(--pass-ink); }
td.fail { background: var(--fail); color: var(--fail-ink); }
td.empty { color: var(--muted); background: #f3f4f6; }
.rate { font-size: 16px; font-weight: 700; }
.rate a { color: inherit; }
.ttk { display: block; font-variant-numeric: tabular-nums; }
.codes { margin: 4px 0 0; padding: 0; list-style: none; font-size: 12px; }
.codes li { display: inline-block; margin: 2px 4px 0 0; }
.code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px;
  background: #fff; border: 1px solid currentColor; border-radius: 3px; padding: 0 4px;
  color: var(--fail-ink); text-decoration: none; }
.badge { display: inline-block; border-radius: 3px; padding: 0 6px; font-weight: 700;
  font-size: 12px; white-space: nowrap; }
.badge.pass { background: #16a34a; color: #fff; }
.badge.fail { background: #dc2626; color: #fff; }
.badge.regress { background: #7c2d12; color: #fff; }
.box { border: 1px solid var(--line); border-left: 4px solid #9ca3af; padding: 8px 12px;
  margin: 12px 0; background: var(--panel); }
.box.warn { border-left-color: #d97706; }
.box.bad { border-left-color: #dc2626; }
.box ul { margin: 4px 0; padding-left: 20px; }
.box h2 { margin-top: 4px; }
article.run { border: 1px solid var(--line); border-radius: 4px; padding: 10px 14px;
  margin: 12px 0; }
article.run.fail { border-left: 4px solid #dc2626; }
article.run.pass { border-left: 4px solid #16a34a; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 4px 0; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; word-break: break-word; }
ul.reasons { padding-left: 18px; margin: 4px 0 8px; }
ul.reasons li { margin: 4px 0; }
.evidence { font-size: 12px; color: var(--muted); }
details { margin: 6px 0; }
summary { cursor: pointer; color: #1d4ed8; }
pre { background: #0f172a; color: #e2e8f0; padding: 8px 10px; overflow: auto;
  max-height: 420px; font-size: 12px; white-space: pre-wrap; word-break: break-all; }
.chart { overflow-x: auto; margin: 8px 0; }
svg.timeline { max-width: 100%; height: auto; font-family: inherit; }
svg .frame { fill: #fff; stroke: #9ca3af; }
svg .grid { stroke: #e5e7eb; }
svg .axis { stroke: #6b7280; }
svg .tick, svg .legend, svg .note { font-size: 11px; fill: #374151; }
svg .panel-title { font-size: 11px; font-weight: 600; fill: #374151; }
svg .axis-title { font-size: 12px; fill: #374151; }
svg.spark { vertical-align: middle; }
svg.spark .spark-line { stroke: #2563eb; stroke-width: 1.4; }
svg.spark circle.then { fill: #2563eb; }
svg.spark circle.now { fill: #111827; }
.trend { white-space: nowrap; }
.spark-row { display: block; }
.spark-label { display: inline-block; width: 34px; font-size: 11px; color: var(--muted); }
footer { color: var(--muted); font-size: 12px; margin-top: 32px; padding-bottom: 24px; }
"""

BASE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" \
content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{ title }}</title>
<style>{{ css }}</style>
</head>
<body>
<header>
<nav><a href="{{ root }}index.html">Matrix</a><a href="{{ root }}glossary.html">Glossary</a></nav>
<h1>{{ title }}</h1>
</header>
<main>
{% block main %}{% endblock %}
</main>
<footer>chaos report · rendered from {{ footer }}</footer>
</body>
</html>
"""

MACROS = """
{% macro codes(reasons, root) -%}
{% if reasons %}<ul class="codes">{% for code, count in reasons %}<li><a class="code" \
href="{{ root }}glossary.html#{{ code | code_anchor }}" title="{{ code | reason_text }}">\
{{ code }}</a>{% if count > 1 %} ×{{ count }}{% endif %}</li>{% endfor %}</ul>{% endif %}
{%- endmacro %}
{% macro spread(s) -%}
<span class="num">{{ s.p50 | ms }}</span> / <span class="num">{{ s.p95 | ms }}</span>\
{% if s.n %} <span class="muted">(n={{ s.n }})</span>{% endif %}
{%- endmacro %}
"""

INDEX = """{% extends "base" %}{% import "macros" as m %}
{% block main %}
<p class="summary">{{ results | length }} result{{ results | length | plural }} \
from {{ runs | length }} run{{ runs | length | plural }} on {{ hosts | length }} \
host{{ hosts | length | plural }}: {{ matrix.killers | length }} killer{{ \
matrix.killers | length | plural }} × {{ matrix.columns | length }} kernel/testbed \
column{{ matrix.columns | length | plural }}. \
{% if runs | length <= 8 %}Runs: {% for run in runs %}<code>{{ run }}</code>\
{{ ", " if not loop.last }}{% endfor %}.{% endif %}</p>
{% if runs | length > 8 %}<details><summary>{{ runs | length }} runs</summary><p>\
{% for run in runs %}<code>{{ run }}</code>{{ ", " if not loop.last }}{% endfor %}</p>\
</details>{% endif %}

{% if regressions %}
<section class="box bad" id="regressions">
<h2>Regressions ({{ regressions | length }})</h2>
<table>
<thead><tr><th>killer</th><th>kernel · testbed</th><th>scenario</th><th>what</th>\
<th>compared with</th></tr></thead>
<tbody>
{% for r in regressions %}
<tr><td>{{ r.killer }}</td><td>{{ r.key[1].release }} · {{ r.key[1].testbed }}</td>
<td><a href="{{ r | regression_link }}">{{ r.scenario }}</a></td>
<td><span class="badge regress">▲</span> {{ r | regression_text }}</td>
<td>{{ r.baseline }}</td></tr>
{% endfor %}
</tbody>
</table>
</section>
{% endif %}

{% if unreadable or conflicts %}
<p class="box warn">{% if unreadable %}<a href="#unreadable">{{ unreadable | length }} unreadable \
input{{ unreadable | length | plural }}</a> skipped{% endif %}{% if unreadable and conflicts %}; \
{% endif %}{% if conflicts %}<a href="#conflicts">{{ conflicts | length }} result{{ conflicts | \
length | plural }} with conflicting copies</a>{% endif %}: listed below the matrix.</p>
{% endif %}

<h2>Killers × kernels</h2>
{% if matrix.killers %}
<table class="matrix">
<thead><tr><th>killer \\ kernel</th>
{% for col in matrix.columns %}<th scope="col">{{ col.release or "(unknown kernel)" }}\
<span class="col-testbed">{{ col.testbed }}</span></th>{% endfor %}
</tr></thead>
<tbody>
{% for killer in matrix.killers %}
<tr><th scope="row" class="killer">{{ killer }}</th>
{% for col in matrix.columns %}{% set cell = matrix.cell(killer, col) %}
{% if cell %}
<td class="{{ 'fail' if cell.failed else 'pass' }}">
<span class="rate"><a href="{{ cell.link }}">{{ cell.passed }}/{{ cell.total }} passed</a></span>
<span class="muted">({{ cell.pass_rate | pct }})</span>
{% if cell | cell_regressed %}<span class="badge regress" title="regression">▲ regression</span>\
{% endif %}
<span class="ttk">time-to-kill p50 {{ cell.phases.time_to_kill.p50 | ms }} · \
p95 {{ cell.phases.time_to_kill.p95 | ms }}</span>
{{ m.codes(cell.reasons, "") }}
</td>
{% else %}
<td class="empty">not run</td>
{% endif %}
{% endfor %}
</tr>
{% endfor %}
</tbody>
</table>
<p class="muted">Green: every run passed. Red: at least one run failed, with the reason codes of \
the failures (× how many runs). Time-to-kill is danger → victim gone, over all runs of the cell. \
See the <a href="glossary.html">glossary</a> for every word and code.</p>
{% else %}
<p>No readable results were found.</p>
{% endif %}

{% if unreadable %}
<section class="box warn" id="unreadable">
<h2>Unreadable inputs ({{ unreadable | length }})</h2>
<p class="muted">These files were skipped; everything else is in the report.</p>
<ul>{% for u in unreadable %}<li><code>{{ u.path }}</code>: {{ u.problem }}</li>{% endfor %}</ul>
</section>
{% endif %}

{% if conflicts %}
<section class="box warn" id="conflicts">
<h2>Conflicting copies ({{ conflicts | length }})</h2>
<p class="muted">Different files claim to be the same result; the more complete one is shown.</p>
<details{% if conflicts | length <= 10 %} open{% endif %}><summary>{{ conflicts | length }} \
identit{{ "y" if conflicts | length == 1 else "ies" }}</summary>
<ul>{% for c in conflicts %}<li>run <code>{{ c[0] }}</code>, scenario <code>{{ c[1] }}</code>, \
kernel <code>{{ c[2] }}</code>, killer <code>{{ c[3] }}</code>, host <code>{{ c[4] }}</code>, \
started_ns {{ c[5] }}</li>{% endfor %}</ul></details>
</section>
{% endif %}

{% endblock %}
"""

DETAIL = """{% extends "base" %}{% import "macros" as m %}
{% block main %}
{% for cell in page.cells %}
<section id="{{ cell.column.anchor }}">
<h2>Testbed {{ cell.column.testbed }} · {{ cell.passed }}/{{ cell.total }} passed \
({{ cell.pass_rate | pct }})</h2>
<table>
<thead><tr><th>scenario</th><th>verdict</th><th>reasons</th>
<th class="num">time-to-kill p50 / p95</th><th class="num">detect p50 / p95</th>
<th class="num">teardown p50 / p95</th><th class="num">recover p50 / p95</th>
{% if not history.empty %}<th>trend over {{ history.labels | length }} nights<br>\
<span class="muted">time-to-kill p50, pass rate</span></th>{% endif %}</tr></thead>
<tbody>
{% for g in cell.scenarios %}{% set ph = g.phases %}
<tr><td><a href="#{{ g.anchor }}">{{ g.scenario }}</a></td>
<td class="{{ 'pass' if g.passed == g.total else 'fail' }}">{{ g.passed }}/{{ g.total }} passed\
{% for r in history.regressions_of((cell.killer, cell.column, g.scenario)) %}
<span class="badge regress" title="{{ r | regression_text }}">▲ regression</span>{% endfor %}</td>
<td>{{ m.codes(g.reasons, root) }}</td>
<td class="num">{{ m.spread(ph.time_to_kill) }}</td><td class="num">{{ m.spread(ph.detect) }}</td>
<td class="num">{{ m.spread(ph.teardown) }}</td><td class="num">{{ m.spread(ph.recover) }}</td>
{% if not history.empty %}<td class="trend">{{ (cell.killer, cell.column, g.scenario) | trend }}\
</td>{% endif %}
</tr>
{% endfor %}
</tbody>
</table>

{% for g in cell.scenarios %}
<section id="{{ g.anchor }}">
<h3>{{ g.scenario }} <span class="muted">· {{ g.passed }}/{{ g.total }} passed</span></h3>
{% for loaded in g.runs %}{% set r = loaded.result %}{% set v = loaded.verdict %}
{% set rid = g.anchor ~ "--" ~ loop.index %}
<article class="run {{ 'pass' if v.passed else 'fail' }}" id="{{ rid }}">
<h4><span class="badge {{ 'pass' if v.passed else 'fail' }}">{{ "PASS" if v.passed else "FAIL" }}\
</span> run <code>{{ r.run_id }}</code> on <code>{{ r.testbed.host or "(unknown host)" }}</code>\
{% if loaded.judged_here %} <span class="muted">(judged by the report)</span>{% endif %}</h4>
{% if r.error %}<p class="box bad">Run error: {{ r.error }}</p>{% endif %}
{% if v.details %}
<ul class="reasons">
{% for d in v.details %}
<li><a class="code" href="{{ root }}glossary.html#{{ d.code | code_anchor }}">{{ d.code }}</a> \
{{ d.message }}{% if d.evidence %}<br><span class="evidence">evidence: \
{% for k, val in d.evidence | dictsort %}{{ k }}={{ val | evidence }}{{ ", " if not loop.last }}\
{% endfor %}</span>{% endif %}</li>
{% endfor %}
</ul>
{% elif v.reasons %}{{ m.codes(v.reasons | counted, root) }}{% endif %}
<table>
<thead><tr><th class="num">time-to-kill</th><th class="num">detect</th>\
<th class="num">teardown</th><th class="num">recover</th><th class="num">killer in reclaim</th>\
<th class="num">killer run delay</th><th class="num">killer major faults</th>\
<th class="num">worst bystander stall</th>\
<th class="num">samples</th></tr></thead>
<tbody><tr>
<td class="num">{{ r.metrics.time_to_kill_ms | ms }}</td><td class="num">\
{{ r.metrics.detect_ms | ms }}</td><td class="num">{{ r.metrics.teardown_ms | ms }}\
{% if r.metrics.victim_teardown_on_cpu_ms is not none %}<br>victim on CPU \
{{ r.metrics.victim_teardown_on_cpu_ms | ms }}, waiting for a CPU \
{{ r.metrics.victim_teardown_runnable_ms | ms }}\
{% if r.metrics.victim_teardown_preempted_by %} (behind \
{% for comm, t in (r.metrics.victim_teardown_preempted_by \
| dictsort(by="value", reverse=true))[:3] %}{{ comm }} {{ t | ms }}{{ ", " if not loop.last }}\
{% endfor %}){% endif %}, asleep \
{{ r.metrics.victim_teardown_blocked_ms | ms }}{% if r.metrics.victim_reclaim_after_signal_ms %}, \
in reclaim {{ r.metrics.victim_reclaim_after_signal_ms | ms }}{% endif %}{% endif %}\
{% if r.metrics.vcpu_steal_teardown_ms is not none %}<br>vCPU time the host took \
{{ r.metrics.vcpu_steal_teardown_ms | ms }}{% endif %}</td>
<td class="num">{{ r.metrics.recover_ms | ms }}</td>
<td class="num">{{ r.metrics.killer_reclaim_total_ms | ms }} \
({{ r.metrics.killer_reclaim_episodes }}×, longest {{ r.metrics.killer_reclaim_longest_ms | ms }})\
</td>
<td class="num">{{ r.metrics.killer_run_delay_ms | ms }}</td>
<td class="num">{{ r.metrics.killer_major_faults }} \
({{ r.metrics.killer_major_faults_in_window }} around danger)</td>
<td class="num">{{ r.metrics.bystander_worst_stall_ms | ms }}</td>
<td class="num">{{ r.metrics.samples }} ({{ r.metrics.samples_missed }} missed, \
{{ "%.1f" | format(r.metrics.sample_hz_achieved) }} Hz)</td>
</tr></tbody>
</table>
{% set tl = r | timeline %}
<div class="chart">{{ tl | chart(r.scenario ~ " · " ~ r.run_id) }}</div>
{% set close = tl.zoom() %}
{% if close %}
<details class="zoom" open><summary>close-up: danger to victim exit</summary>
<div class="chart">{{ close | chart(r.scenario ~ " · " ~ r.run_id ~ " (close-up)") }}</div>
</details>
{% endif %}
{% for note in tl.notes %}<p class="note">{{ note }}</p>{% endfor %}
{% if r.victims %}
<table>
<thead><tr><th>victim</th><th>pid</th><th>expected</th><th>died</th><th>killed by</th>\
<th>signal</th><th class="num">signal at</th><th class="num">exit at</th>\
<th class="num">collected at</th><th>exit</th></tr></thead>
<tbody>{% for x in r.victims %}
<tr><td>{{ x.instance }}{% if x.stressor %} <span class="muted">({{ x.stressor }})</span>\
{% endif %}</td><td>{{ x.pid }}</td><td>{{ "yes" if x.expected else "no" }}</td>
<td>{{ "yes" if x.died else "no" }}</td><td>{{ x.killed_by or "–" }}\
{% if x.killer_comm %} ({{ x.killer_comm }}){% endif %}</td>
<td>{{ x.exit_signal if x.exit_signal is not none else "–" }}</td>
<td class="num">{{ x.signal_t_ns | rel(r) }}</td>
<td class="num">{{ x | gone_ns | rel(r) }}</td>
<td class="num">{{ x.exit_t_ns | rel(r) }}</td>
<td>{{ x.exit_code if x.exit_code is not none else "–" }}</td></tr>
{% endfor %}</tbody>
</table>
{% endif %}
{% if r.bystanders %}
<table>
<thead><tr><th>bystander</th><th>pid</th><th>survived</th><th class="num">worst stall</th>\
<th class="num">heartbeats</th><th>killed by</th></tr></thead>
<tbody>{% for b in r.bystanders %}
<tr><td>{{ b.instance }}</td><td>{{ b.pid }}</td><td>{{ "yes" if b.survived else "no" }}</td>
<td class="num">{{ b.worst_stall_ms | ms }}</td><td class="num">{{ b.beats }}</td>
<td>{{ b.killed_by or "–" }}</td></tr>
{% endfor %}</tbody>
</table>
{% endif %}
{% if r.events %}
<details id="{{ rid }}--events"><summary>events ({{ r.events | length }})</summary>
<table>
<thead><tr><th class="num">t (s)</th><th>kind</th><th>pid</th><th>comm</th><th>sender</th>\
<th>signal</th><th>source</th><th>detail</th></tr></thead>
<tbody>{% for e in r.events | sort(attribute="t_ns") %}
<tr><td class="num">{{ e.t_ns | rel(r) }}</td><td>{{ e.kind }}</td><td>{{ e.pid or "" }}</td>
<td>{{ e.comm }}</td><td>{% if e.sender_pid or e.sender_comm %}{{ e.sender_comm }} \
({{ e.sender_pid }}){% endif %}</td><td>{{ e.signal or "" }}</td><td>{{ e.source }}</td>
<td>{{ e.detail }}</td></tr>
{% endfor %}</tbody>
</table>
</details>
{% endif %}
<details id="{{ rid }}--system"><summary>system: {{ r.kernel.release }}, \
{{ r.testbed.kind }} · {{ r.testbed.accel }}, {{ r.testbed.memory_mib }} MiB, \
{{ r.killer.name }} {{ r.killer.version }}</summary>
<dl class="kv">
{% for k, val in r | system_info %}<dt>{{ k }}</dt><dd>{{ val }}</dd>{% endfor %}
</dl>
</details>
{% if r.killer.config %}
<details id="{{ rid }}--config"><summary>killer configuration</summary>
<pre>{{ r.killer.config }}</pre></details>
{% endif %}
{% for name, text in r | logs %}
<details id="{{ rid }}--log-{{ loop.index }}"><summary>log: {{ name }} \
({{ text | line_count }} lines)</summary><pre>{{ text | tail }}</pre></details>
{% endfor %}
</article>
{% endfor %}
</section>
{% endfor %}
</section>
{% endfor %}
{% endblock %}
"""

GLOSSARY = """{% extends "base" %}
{% block main %}
<h2>Words</h2>
<dl class="kv">
{% for t in terms %}<dt id="{{ t.anchor }}"><strong>{{ t.word }}</strong></dt>\
<dd>{{ t.text }}</dd>{% endfor %}
</dl>
<h2 id="reasons">Reason codes</h2>
<p class="muted">A failed verdict lists one or more of these, each with the numbers that \
produced it (its evidence).</p>
<table>
<thead><tr><th>code</th><th>meaning</th></tr></thead>
<tbody>{% for code, text in reasons %}
<tr id="{{ code | code_anchor }}"><td><code>{{ code }}</code></td><td>{{ text }}</td></tr>
{% endfor %}</tbody>
</table>
<h2 id="charts">How to read a chart</h2>
<dl class="kv">
{% for word, text in chart_help %}<dt><strong>{{ word }}</strong></dt><dd>{{ text }}</dd>\
{% endfor %}
</dl>
<p class="muted">An example (synthetic):</p>
<div class="chart">{{ example }}</div>
{% endblock %}
"""

TEMPLATES = {"base": BASE, "macros": MACROS, "index": INDEX, "detail": DETAIL,
             "glossary": GLOSSARY}
