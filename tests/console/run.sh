#!/usr/bin/env bash
# Browser tests of the web console: headless Chromium (Debian's chromium
# package, installed with apt-get when missing) driven by playwright-core,
# with axe-core, against the real binary. Screenshots of every page go to
# target/console-screenshots/.
#
#   tests/console/run.sh            # uses $QSTASH_BIN or <repo>/target/debug/qstash
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
export QSTASH_BIN="${QSTASH_BIN:-$REPO_ROOT/target/debug/qstash}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$QSTASH_BIN" ]; then
  echo "run.sh: server binary not found: $QSTASH_BIN (cargo build first, or set QSTASH_BIN)" >&2
  exit 2
fi

if [ ! -x "$CHROMIUM" ]; then
  echo "run.sh: installing chromium (apt-get)" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

stamp="$HERE/node_modules/.package-lock.sha256"
want="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
if [ ! -d "$HERE/node_modules/playwright-core" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "run.sh: installing playwright-core and axe-core (npm ci)" >&2
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi

rm -rf "$REPO_ROOT/target/console-screenshots"
cd "$HERE"
exec node --test --test-concurrency=1 ./*.test.mjs
