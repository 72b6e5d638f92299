#!/usr/bin/env bash
# Runs the Upstash Workflow suites: a Node 20 app on `@upstash/workflow`'s serve() driven against
# the real server (tests/workflow/js), and, when present, the Python app (tests/workflow/python).
#
#   tests/workflow/run.sh                 # uses $QSTASH_BIN or <repo>/target/debug/qstash
#   tests/workflow/run.sh setup           # only install the pinned SDKs
#   QSTASH_TEST_BACKEND=postgres tests/workflow/run.sh   # servers on PostgreSQL
#
# Installs the pinned SDKs on first use (js/node_modules via `npm ci`, python/.venv from
# python/requirements.txt). Needs Node 20 and Python >= 3.9. Only 127.0.0.1 is used.
set -uo pipefail

PYTHON="${PYTHON:-python3}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
export QSTASH_BIN="${QSTASH_BIN:-$REPO_ROOT/target/debug/qstash}"
WHICH="${1:-all}"

if [ ! -x "$QSTASH_BIN" ]; then
  echo "workflow/run.sh: server binary not found or not executable: $QSTASH_BIN (cargo build first)" >&2
  exit 2
fi

# The crash-repair test puts a stopped server's database into a crash state
# with the sqlite3 command-line tool (psql on PostgreSQL, which a PostgreSQL
# run has already). Debian's sqlite3 package, installed when missing.
setup_tools() {
  command -v sqlite3 >/dev/null && return 0
  echo "workflow/run.sh: installing sqlite3 (apt-get)" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq sqlite3 >/dev/null
}

setup_js() {
  setup_tools || return 1
  local dir="$HERE/js" stamp="$HERE/js/node_modules/.package-lock.sha256" want
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ ! -d "$dir/node_modules/@upstash/workflow" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "workflow/run.sh: installing JS deps (npm ci) in $dir" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || return 1
    echo "$want" > "$stamp"
  fi
}

setup_python() {
  local venv="$HERE/python/.venv" req="$HERE/python/requirements.txt"
  local stamp="$venv/.requirements.sha256" want
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "workflow/run.sh: installing Python deps into $venv" >&2
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv" || return 1
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" || return 1
    echo "$want" > "$stamp"
  fi
}

if [ "$WHICH" = setup ]; then
  setup_js && setup_python
  exit $?
fi

js_rc=0
if setup_js; then
  echo "== Upstash Workflow JS suite (@upstash/workflow)" >&2
  (cd "$HERE/js" && node --test --test-concurrency=6 ./*.test.mjs) || js_rc=$?
else
  echo "workflow/run.sh: JS setup failed" >&2
  js_rc=1
fi
py_rc=0
if setup_python; then
  echo "== Upstash Workflow Python suite (upstash-workflow)" >&2
  (cd "$HERE/python" && .venv/bin/python -m pytest -q) || py_rc=$?
else
  echo "workflow/run.sh: Python setup failed" >&2
  py_rc=1
fi
echo "workflow/run.sh: js rc=$js_rc python rc=$py_rc" >&2
[ "$js_rc" -eq 0 ] && [ "$py_rc" -eq 0 ]
