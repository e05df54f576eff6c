#!/usr/bin/env bash
# Set-up and entry point on a fresh Debian 12 machine, as root. Idempotent.
#   ./bootstrap.sh main   boot a VM on the default kernel, run the quick scenarios,
#                         write reports/index.html
#   ./bootstrap.sh test   lint, type-check and run the test suite (what CI runs)
#   ./bootstrap.sh setup  only install (system packages, the virtualenv); for runners
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(
  qemu-system-x86 busybox-static cpio xz-utils zstd   # VM testbeds
  earlyoom oomd nohang stress-ng                      # killers under test, extra stressors
  docker.io                                           # the docker runtime
  chromium                                            # report tests in a real browser
  python3-venv git ca-certificates iproute2 procps util-linux
)
VENV=${CHAOS_VENV:-.venv}

log() { printf '[bootstrap] %s\n' "$*" >&2; }

install_system() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
  # The Debian units of the killers must not run on this host: the suite starts them
  # itself, inside testbeds. Stop only the services that installing them started.
  for unit in earlyoom oomd nohang nohang-desktop; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$unit" 2>/dev/null; then
      systemctl disable --now "$unit" >/dev/null 2>&1 || true
    fi
  done
}

install_python() {
  local py=${PYTHON:-python3}
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV with $($py --version)"
    "$py" -m venv "$VENV"
  fi
  local stamp="$VENV/.chaos-installed"
  if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
    log "installing the chaos package (editable) and its dev tools"
    "$VENV/bin/pip" install -q --upgrade pip >"$VENV/pip.log" 2>&1 || true
    # compat: a plain path in a .pth file; the default import-hook finder costs
    # half a second per interpreter start under emulation.
    # pip's own output (setuptools warns that compat mode is transitional) goes to a log.
    if ! "$VENV/bin/pip" install -q -e '.[dev]' --config-settings editable_mode=compat \
        >>"$VENV/pip.log" 2>&1; then
      tail -20 "$VENV/pip.log" >&2
      log "pip install failed; the whole log is $VENV/pip.log"
      exit 1
    fi
    touch "$stamp"
  fi
}

cmd_main() {
  install_system
  install_python
  "$VENV/bin/chaos" kernels fetch "${CHAOS_KERNEL:-6.12}" >/dev/null
  exec "$VENV/bin/chaos" run --quick -o reports "$@"
}

cmd_test() {
  install_system
  install_python
  "$VENV/bin/chaos" kernels fetch 6.1 >/dev/null
  "$VENV/bin/chaos" kernels fetch 6.12 >/dev/null
  log "ruff"
  "$VENV/bin/ruff" check chaos oomguard tests benchmarks
  log "mypy"
  "$VENV/bin/mypy" chaos oomguard
  # Separate runs: module names repeat (two conftest.py; benchmarks/killers.py and the
  # tests/killers package).
  "$VENV/bin/mypy" tests/unit
  "$VENV/bin/mypy" tests/integration tests/killers
  "$VENV/bin/mypy" benchmarks
  log "pytest"
  # Scenario tests: only the CI-sized smoke selection; -n 2: one VM per xdist worker.
  # Scenario tests fail when a killer fails (findings about the killers); the suite's own
  # CI runs the smoke matrix through tests/integration/test_smoke_matrix.py instead,
  # which asserts what the suite guarantees whatever the killers do.
  # worksteal: an idle worker takes half of the other's queue (the default "load"
  # hands out fixed batches, and the smoke matrix's worker was left with a tail).
  exec "$VENV/bin/pytest" -p no:cacheprovider -n 2 --dist worksteal -m "not scenario" \
    --durations=20 "$@"
}

case "${1:-}" in
  setup) install_system; install_python ;;
  main) shift; cmd_main "$@" ;;
  test) shift; cmd_test "$@" ;;
  *) echo "usage: $0 main|test|setup [extra arguments]" >&2; exit 2 ;;
esac
