#!/usr/bin/env bash
# PromQL query benchmark over HTTP: `sum by (job) (rate(x[5m]))` over the
# last hour at 15 s steps, on Cairn and on Prometheus holding the same data.
# Starts a release cairn and Debian's prometheus on fresh data dirs on
# loopback, pushes 10,000 counters x{job (10 values), instance (1,000 values)}
# x 240 samples 15 s apart to both by remote write (cairn-bench ingest
# --workload promql), then times the same query_range alternately on each
# (cairn-bench query: one warm-up, then `runs` timed requests, median), for
# `rounds` rounds. Both servers are stopped by PID at the end.
# Usage: scripts/bench-query.sh [runs] [rounds]
# Env: CARGO_TARGET_DIR (where the release binaries are built), PROMETHEUS
# (default /usr/bin/prometheus), CAIRN_PORT, PROM_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
rounds=${2:-3}
target=${CARGO_TARGET_DIR:-target}
prometheus=${PROMETHEUS:-/usr/bin/prometheus}
cairn_port=${CAIRN_PORT:-18191}
prom_port=${PROM_PORT:-19191}
query='sum by (job) (rate(x[5m]))'

cargo build --release -q -p cairn -p cairn-bench
bench="$target/release/cairn-bench"

dir=$(mktemp -d)
cairn_pid=
prom_pid=
cleanup() {
  [ -n "$cairn_pid" ] && kill -TERM "$cairn_pid" 2>/dev/null && wait "$cairn_pid" || true
  [ -n "$prom_pid" ] && kill -TERM "$prom_pid" 2>/dev/null && wait "$prom_pid" || true
  rm -rf "$dir"
}
trap cleanup EXIT

wait_ready() {
  for _ in $(seq 1 300); do
    curl -sf "$1" >/dev/null && return 0
    sleep 0.1
  done
  echo "not ready: $1" >&2
  return 1
}

# The benchmark pushes as fast as it can: per-tenant ingestion and series limits off.
printf 'limits:\n  ingestion_rate: 0\n  max_global_series_per_user: 0\n' >"$dir/cairn.yaml"
"$target/release/cairn" serve --config "$dir/cairn.yaml" --http.listen-address "127.0.0.1:$cairn_port" \
  --storage.path "$dir/cairn" --log.level warn &
cairn_pid=$!
printf 'global:\n  scrape_interval: 15s\n' >"$dir/prometheus.yml"
"$prometheus" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/prometheus" \
  --web.listen-address="127.0.0.1:$prom_port" --web.enable-remote-write-receiver \
  --log.level=warn &
prom_pid=$!
wait_ready "http://127.0.0.1:$cairn_port/ready"
wait_ready "http://127.0.0.1:$prom_port/-/ready"
echo "cairn pid $cairn_pid, prometheus pid $prom_pid ($("$prometheus" --version 2>&1 | head -1))"

# The last sample on a whole minute a minute ago; 240 samples 15 s apart.
end=$(( $(date +%s) / 60 * 60 - 60 ))
start=$(( end - 239 * 15 ))
echo "== push: 10,000 series x 240 samples, $start..$end"
"$bench" ingest --workload promql --end-ms "${end}000" --url "http://127.0.0.1:$cairn_port/api/v1/push" \
  --pid "$cairn_pid" --tenant bench | grep -E 'samples|failed'
"$bench" ingest --workload promql --end-ms "${end}000" --url "http://127.0.0.1:$prom_port/api/v1/write" \
  --pid "$prom_pid" | grep -E 'samples|failed'

for round in $(seq 1 "$rounds"); do
  echo "== round $round: $query, $start..$end step 15s, $runs runs"
  echo "-- cairn"
  "$bench" query --url "http://127.0.0.1:$cairn_port/api/v1/query_range" --tenant bench \
    --query "$query" --start "$start" --end "$end" --step 15 --runs "$runs" 2>/dev/null
  echo "-- prometheus"
  "$bench" query --url "http://127.0.0.1:$prom_port/api/v1/query_range" \
    --query "$query" --start "$start" --end "$end" --step 15 --runs "$runs" 2>/dev/null
done
