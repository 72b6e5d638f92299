#!/usr/bin/env bash
# Checks the server against its own OpenAPI document (GET /v2/openapi.json)
# with schemathesis: generated requests, valid and invalid, to every
# documented operation; no answer may be a 5xx, every answer must match its
# documented schema and content type (errors are {"error": ...}). The
# workflow routes documented as not supported yet may answer their
# documented 501 (schemathesis.toml).
#
#   tests/openapi/run.sh            # uses $QSTASH_BIN or <repo>/target/debug/qstash
#   QSTASH_TEST_BACKEND=postgres tests/openapi/run.sh   # the server on PostgreSQL
#
# Installs schemathesis (requirements.txt) into tests/openapi/.venv on first
# use. Bounded: a few examples per operation and a time budget (the whole
# run takes about 65 s: the fuzzing phase repeats until the budget is
# spent). Destinations are refused except 127.0.0.1, so generated publishes
# never leave the host. One worker by default: with two, Python 3.11's
# ast module races inside hypothesis ("AST constructor recursion depth
# mismatch", a runtime error in schemathesis itself), and on a 2-core
# machine one worker generates as many cases.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
QSTASH_BIN="${QSTASH_BIN:-$REPO_ROOT/target/debug/qstash}"
PYTHON="${PYTHON:-python3}"
MAX_EXAMPLES="${QSTASH_OPENAPI_EXAMPLES:-25}"
MAX_TIME="${QSTASH_OPENAPI_SECONDS:-60}"
TOKEN="eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="

setup() {
  local venv="$HERE/.venv" req="$HERE/requirements.txt"
  local stamp="$venv/.requirements.sha256" want
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ ! -x "$venv/bin/schemathesis" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "openapi/run.sh: installing schemathesis into $venv" >&2
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv" || return 1
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" || return 1
    echo "$want" > "$stamp"
  fi
}

setup || { echo "openapi/run.sh: setup failed" >&2; exit 1; }
[ "${1:-}" = setup ] && exit 0

work="$(mktemp -d)"
schema=""
args=(dev --port 0 --data-dir "$work/data" --destination-deny '*' --destination-allow 127.0.0.1)
if [ "${QSTASH_TEST_BACKEND:-}" = postgres ]; then
  schema="${QSTASH_TEST_SCHEMA_PREFIX:-qt_}openapi_$$"
  url="${QSTASH_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  case "$url" in *\?*) sep='&' ;; *) sep='?' ;; esac
  args+=(--database-url "${url}${sep}options=-csearch_path%3D${schema}" --database-pool 4)
fi
RUST_LOG=warn QSTASH_LOG_FORMAT=text "$QSTASH_BIN" "${args[@]}" > "$work/out" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  if [ -n "$schema" ] && command -v psql >/dev/null; then
    psql "$url" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1
  fi
  rm -rf "$work"
}
trap cleanup EXIT

base=""
for _ in $(seq 1 100); do
  base="$(grep -o 'running at http://[^ ]*' "$work/out" | head -1 | cut -d' ' -f3)"
  [ -n "$base" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/out" >&2; exit 1; }
  sleep 0.1
done
[ -n "$base" ] || { echo "openapi/run.sh: the server did not start" >&2; cat "$work/out" >&2; exit 1; }

# schemathesis keeps state (.hypothesis) in its working directory.
cd "$work"
echo "== schemathesis against $base/v2/openapi.json (${MAX_EXAMPLES} examples per operation, ${MAX_TIME}s at most)" >&2
"$HERE/.venv/bin/schemathesis" --config-file "$HERE/schemathesis.toml" run "$base/v2/openapi.json" \
  --url "$base" \
  --header "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "$MAX_EXAMPLES" \
  --max-time "$MAX_TIME" \
  --request-timeout 10 \
  --generation-database none \
  --seed "${QSTASH_OPENAPI_SEED:-1}" \
  --workers "${QSTASH_OPENAPI_WORKERS:-1}" \
  --no-color
rc=$?
if ! kill -0 "$pid" 2>/dev/null; then
  echo "openapi/run.sh: the server died during the run" >&2
  cat "$work/out" >&2
  rc=1
fi
exit $rc
