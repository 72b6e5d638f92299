#!/usr/bin/env bash
# Reference peer for qstash-bench: the same publish and end-to-end workload
# through BullMQ on a local redis-server. Installs bullmq (npm) and
# redis-server (apt-get) when missing; skips with a message when it can't.
# Not part of the tests.
#
#   bench/peers/bullmq/run.sh            # redis with appendfsync always (durable, like qstash)
#   REDIS_FSYNC=everysec bench/peers/bullmq/run.sh
#   MEASURE_MS=300 WARMUP_MS=100 bench/peers/bullmq/run.sh   # quick check
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

skip() {
  echo "bullmq peer skipped: $*"
  exit 0
}

command -v node >/dev/null && command -v npm >/dev/null || skip "node and npm are not installed"
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing redis-server (apt-get) ..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null 2>&1 ||
      skip "apt-get could not install redis-server"
  fi
  command -v redis-server >/dev/null || skip "redis-server is not installed (apt-get install redis-server)"
fi
if [ ! -d node_modules/bullmq ] || [ ! -d node_modules/ioredis ]; then
  echo "installing bullmq (npm) ..."
  npm install --no-audit --no-fund --silent >/dev/null 2>&1 || skip "npm could not install bullmq"
fi

fsync="${REDIS_FSYNC:-always}"
data="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
redis-server --port "$port" --bind 127.0.0.1 --dir "$data" --save "" \
  --appendonly yes --appendfsync "$fsync" --daemonize no --logfile "$data/redis.log" &
redis=$!
trap 'kill "$redis" 2>/dev/null; wait "$redis" 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
echo "redis-server $(redis-server --version | grep -o 'v=[0-9.]*') (appendfsync $fsync), bullmq $(node -p 'require("./node_modules/bullmq/package.json").version'), node $(node --version)"
REDIS_PORT="$port" REDIS_FSYNC="$fsync" node bench.mjs
