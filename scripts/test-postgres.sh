# Sourced by scripts/test: finds a PostgreSQL server for the PostgreSQL runs
# of the suites and exports QSTASH_TEST_DATABASE_URL, or leaves it unset.
#
# In order: QSTASH_TEST_DATABASE_URL when set; else the local server on
# 127.0.0.1:5432 (user postgres) when it answers; else a throwaway cluster
# in target/pg-test started with Debian's initdb/pg_ctl (stopped on exit);
# else nothing. Each test server makes a schema of its own, named after this
# run (QSTASH_TEST_SCHEMA_PREFIX=qtr<unix time>_); the run drops its own
# schemas at its end, and those of runs older than three hours (killed
# before they could) at its start. Other runs in progress are left alone.

pg_bindir() {
  local d
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
}

pg_answers() {
  command -v psql >/dev/null && psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1
}

# Runs a PostgreSQL tool as the postgres user when we are root (initdb
# refuses root).
pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_throwaway() {
  local bin dir port=55432
  bin="$(pg_bindir)"
  [ -n "$bin" ] || return 1
  dir="$PWD/target/pg-test"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    rm -rf "$dir"; mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    pg_as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null || return 1
  fi
  pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null || return 1
  PG_THROWAWAY_STOP="pg_as_owner $bin/pg_ctl -D $dir/data -m fast -w stop"
  export QSTASH_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

# Drops the test schemas matching the SQL condition $1 (on `nspname`).
pg_drop_schemas_where() {
  psql "$QSTASH_TEST_DATABASE_URL" -Atqc \
    "SELECT format('DROP SCHEMA %I CASCADE;', nspname) FROM pg_namespace WHERE $1" \
    | psql "$QSTASH_TEST_DATABASE_URL" -q >/dev/null 2>&1 || true
}

pg_drop_test_schemas() {
  pg_drop_schemas_where "nspname ~ '^qtr[0-9]+_' AND substring(nspname from '^qtr([0-9]+)_')::bigint < extract(epoch from now()) - 10800"
}

# This run's schemas (called when the run ends).
pg_drop_run_schemas() {
  [ -n "${QSTASH_TEST_DATABASE_URL:-}" ] || return 0
  pg_drop_schemas_where "starts_with(nspname, '${QSTASH_TEST_SCHEMA_PREFIX}')"
}

export QSTASH_TEST_SCHEMA_PREFIX="qtr$(date +%s)_"

pg_find() {
  if [ -n "${QSTASH_TEST_DATABASE_URL:-}" ]; then
    pg_answers "$QSTASH_TEST_DATABASE_URL" || { echo "QSTASH_TEST_DATABASE_URL does not answer" >&2; return 1; }
  elif pg_answers "postgres://postgres@127.0.0.1:5432/postgres"; then
    export QSTASH_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
  else
    pg_throwaway || return 1
  fi
  pg_drop_test_schemas
}
