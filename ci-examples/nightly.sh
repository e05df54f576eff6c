#!/usr/bin/env bash
# The nightly run for any CI (GitHub Actions has .github/workflows/nightly.yml); see
# docs/nightly.md. Your CI's own matrix starts one `run` per runner and kernel, collects
# the bundle directories, then starts one `report`.
#
#   ci-examples/nightly.sh run KERNEL BUNDLE_DIR
#       on a runner, as root: set the host up, chaos doctor, chaos run. KERNEL is an alias
#       (6.1, 6.12-rt, ...), a linux-image-* package, or "host" (this machine's own kernel,
#       local testbed). Writes BUNDLE_DIR/{results/,report/,doctor.json,ci.json}.
#       Exit 0 when the run was valid, 1 when chaos doctor found something missing (the run
#       still happens and its results still count), 2 on bad usage.
#   ci-examples/nightly.sh report BUNDLES_DIR HISTORY_DIR OUT_DIR
#       once, anywhere with Python 3.11 and this package: render every bundle under
#       BUNDLES_DIR with the nights kept in HISTORY_DIR/nights/, then add tonight there.
#
# Environment: CHAOS_SELECT (a -k expression), CHAOS_NIGHT (tonight's history name;
# default the UTC date and time), CHAOS_HISTORY_NIGHTS (nights kept, default 60),
# CHAOS_PUBLISH_DIR (copy the report there, e.g. a web server's directory),
# CHAOS_RUNNER_LABEL (default the host name), CI_RUN_URL (a link back to the CI run).
set -euo pipefail
CALLER=$PWD
cd "$(dirname "$0")/.."
REPO=$PWD

usage() { sed -n '2,19p' "$REPO/ci-examples/nightly.sh" | sed 's/^# \{0,1\}//' >&2; exit 2; }
abspath() { case $1 in /*) echo "$1" ;; *) echo "$CALLER/$1" ;; esac; }

cmd_run() {
  (($# == 2)) || usage
  local kernel=$1 bundle venv=${CHAOS_VENV:-.venv}
  bundle=$(abspath "$2")
  [[ $venv = /* ]] || venv=$REPO/$venv
  mkdir -p "$bundle"
  rm -rf "${bundle:?}/results" "${bundle:?}/report"
  ./bootstrap.sh setup
  export PATH="$venv/bin:$PATH"
  [ "$kernel" = host ] || chaos kernels fetch "$kernel"

  local status=0
  if [ "$kernel" = host ]; then
    chaos doctor --testbed local || status=$?
    chaos doctor --testbed local --json > "$bundle/doctor.json" || true
  else
    chaos doctor --testbed vm --kernel "$kernel" || status=$?
    chaos doctor --testbed vm --kernel "$kernel" --json > "$bundle/doctor.json" || true
  fi
  ((status != 2)) || exit 2

  cat > "$bundle/ci.json" <<EOF
{"runner_label": "${CHAOS_RUNNER_LABEL:-$(hostname)}", "kernel": "$kernel", "run_id": "${CHAOS_RUN_ID:-}",
 "commit": "$(git rev-parse HEAD 2>/dev/null || echo unknown)", "ci_run": "${CI_RUN_URL:-}"}
EOF
  local select=${CHAOS_SELECT:-}
  if [ "$kernel" = host ]; then
    chaos run --testbed local --results-dir "$bundle/results" -o "$bundle/report" \
      ${select:+-k "$select"}
  else
    chaos run --testbed vm --kernel "$kernel" --results-dir "$bundle/results" \
      -o "$bundle/report" ${select:+-k "$select"}
  fi
  exit "$status"
}

cmd_report() {
  (($# == 3)) || usage
  local bundles history out
  bundles=$(abspath "$1") history=$(abspath "$2") out=$(abspath "$3")
  local night=${CHAOS_NIGHT:-$(date -u +%Y-%m-%dT%H%MZ)} keep=${CHAOS_HISTORY_NIGHTS:-60}
  [ -d "$bundles" ] || { echo "nightly.sh: no bundles directory $bundles" >&2; exit 2; }
  if ! command -v chaos >/dev/null; then
    [ -x "$REPO/.venv/bin/chaos" ] || { python3 -m venv "$REPO/.venv" \
      && "$REPO/.venv/bin/pip" install -q "$REPO"; }
    export PATH="$REPO/.venv/bin:$PATH"
  fi
  shopt -s nullglob
  mkdir -p "$history/nights"
  rm -rf "${history:?}/nights/$night"  # a re-run of the same night replaces it
  local nights=("$history"/nights/*/)
  if ((${#nights[@]})); then
    chaos report "$bundles" --history "${nights[@]}" -o "$out"
  else
    chaos report "$bundles" -o "$out"
  fi
  # Tonight joins the history; names sort by date, so a glob lists the nights oldest first.
  mkdir -p "$history/nights/$night"
  cp -r "$bundles"/. "$history/nights/$night/"
  nights=("$history"/nights/*/)
  local drop=$((${#nights[@]} - keep))
  if ((drop > 0)); then rm -rf "${nights[@]:0:drop}"; fi
  if [ -n "${CHAOS_PUBLISH_DIR:-}" ]; then
    mkdir -p "$CHAOS_PUBLISH_DIR"
    cp -r "$out"/. "$CHAOS_PUBLISH_DIR/"
    echo "nightly.sh: published to $CHAOS_PUBLISH_DIR"
  fi
}

case "${1:-}" in
  run) shift; cmd_run "$@" ;;
  report) shift; cmd_report "$@" ;;
  *) usage ;;
esac
