#!/usr/bin/env bash
# Runs the SDK compatibility suites (Python `qstash`, JS `@upstash/qstash`) against the server.
#
#   tests/compat/run.sh                 # uses $QSTASH_BIN or <repo>/target/debug/qstash
#   QSTASH_BIN=/path/to/qstash tests/compat/run.sh
#   tests/compat/run.sh py|js           # only one of the suites
#   tests/compat/run.sh setup           # only install the SDKs
#   QSTASH_TEST_BACKEND=postgres tests/compat/run.sh   # servers on PostgreSQL (QSTASH_TEST_DATABASE_URL)
#
# Needs Python >= 3.9 (3.11 on CI machines) and Node 20; installs the pinned SDKs on first use
# (python/.venv from python/requirements.txt, js/node_modules via `npm ci`). Only 127.0.0.1 is used.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
export QSTASH_BIN="${QSTASH_BIN:-$REPO_ROOT/target/debug/qstash}"
PYTHON="${PYTHON:-python3}"
WHICH="${1:-all}"

if [ ! -x "$QSTASH_BIN" ]; then
  echo "run.sh: server binary not found or not executable: $QSTASH_BIN" >&2
  echo "run.sh: build it first (cargo build) or set QSTASH_BIN" >&2
  exit 2
fi

setup_python() {
  local venv="$HERE/python/.venv" req="$HERE/python/requirements.txt"
  local stamp="$venv/.requirements.sha256" want
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "run.sh: installing Python deps into $venv" >&2
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv" || return 1
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" || return 1
    echo "$want" > "$stamp"
  fi
}

setup_js() {
  local dir="$HERE/js" stamp="$HERE/js/node_modules/.package-lock.sha256" want
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ ! -d "$dir/node_modules/@upstash/qstash" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "run.sh: installing JS deps (npm ci) in $dir" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || return 1
    echo "$want" > "$stamp"
  fi
}

# `setup` only installs, so that several runs can start at once afterwards.
if [ "$WHICH" = setup ]; then
  setup_python && setup_js
  exit $?
fi

py_rc=0
js_rc=0

if [ "$WHICH" = all ] || [ "$WHICH" = py ]; then
  if setup_python; then
    echo "== Python SDK (qstash) compat suite" >&2
    (cd "$HERE/python" && .venv/bin/python -m pytest -q -n 4 --dist load) || py_rc=$?
  else
    echo "run.sh: Python setup failed" >&2
    py_rc=1
  fi
fi

if [ "$WHICH" = all ] || [ "$WHICH" = js ]; then
  if setup_js; then
    echo "== JS SDK (@upstash/qstash) compat suite" >&2
    (cd "$HERE/js" && node --test --test-concurrency=4 ./*.test.mjs) || js_rc=$?
  else
    echo "run.sh: JS setup failed" >&2
    js_rc=1
  fi
fi

echo "run.sh: python rc=$py_rc js rc=$js_rc" >&2
[ "$py_rc" -eq 0 ] && [ "$js_rc" -eq 0 ]
