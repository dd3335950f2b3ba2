#!/usr/bin/env bash
# `sum(rate(x[5m]))` over SERIES counters across DAYS days of compacted
# blocks, Cairn vs Prometheus on the same data in the same run.
# Data: `cairn-bench history --workload promql` (x{job, instance}), one
# sample every INTERVAL s, DAYS days ending at the last UTC midnight.
# - Cairn: `cairn import` from standard input into a running `cairn serve`
#   (maintenance every second), which picks the 2h blocks up and compacts
#   them to 24h; the script waits for that.
# - Prometheus: the same data as an OpenMetrics file, `promtool tsdb
#   create-blocks-from openmetrics --max-block-duration=24h`, then
#   `prometheus` started on that data directory (retention 30d).
# Then the same query_range (the whole range, step STEP s) is timed by
# `cairn-bench query` (one warm-up, RUNS timed requests, median), ROUNDS
# rounds alternating Cairn and Prometheus. Both answers' digests are printed.
# Usage: scripts/bench-history-query.sh   Env: SERIES (1000), DAYS (7),
# INTERVAL (60), STEP (300), RUNS (3), ROUNDS (3), CARGO_TARGET_DIR, TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
series=${SERIES:-1000}
days=${DAYS:-7}
interval=${INTERVAL:-60}
step=${STEP:-300}
runs=${RUNS:-3}
rounds=${ROUNDS:-3}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p cairn -p cairn-bench
bench="$target/release/cairn-bench"
cairn="$target/release/cairn"
dir=$(mktemp -d "${TMPDIR:-/tmp}/bench-hquery.XXXXXX")
day=86400000
end=$(( $(date +%s) / 86400 * day ))
start=$(( end - days * day ))
history=("$bench" history --workload promql --series "$series" --start-ms "$start" --end-ms "$end" --interval "$interval")
echo "== $series series x $days days at ${interval}s, $start..$end ms"

printf 'storage:\n  maintenance_interval: 1s\nlimits:\n  ingestion_rate: 0\n  max_global_series_per_user: 0\n' >"$dir/cairn.yaml"
"$cairn" serve --config "$dir/cairn.yaml" --storage.path "$dir/cairn" \
  --http.listen-address 127.0.0.1:18391 --log.level warn &
cairn_pid=$!; pids+=("$cairn_pid")
wait_ready http://127.0.0.1:18391/ready
"${history[@]}" | /usr/bin/time -f 'cairn import: %e s wall, max RSS %M KB' \
  "$cairn" import --storage.path "$dir/cairn" --tenant bench -
wait_blocks "$dir/cairn/tenants/bench/blocks" "$days" 1200
echo "cairn: $(count_blocks "$dir/cairn/tenants/bench/blocks") blocks"

"${history[@]}" >"$dir/history.om"
/usr/bin/time -f 'promtool: %e s wall, max RSS %M KB' \
  promtool tsdb create-blocks-from openmetrics --max-block-duration=24h -q "$dir/history.om" "$dir/prom"
rm "$dir/history.om"
echo "prometheus: $(count_blocks "$dir/prom") blocks"
printf 'global:\n  scrape_interval: 15s\n' >"$dir/prometheus.yml"
prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/prom" \
  --storage.tsdb.retention.time=30d --web.listen-address=127.0.0.1:18390 --log.level=warn &
prom_pid=$!; pids+=("$prom_pid")
wait_ready http://127.0.0.1:18390/-/ready

query='sum(rate(x[5m]))'
qstart=$(( start / 1000 ))
qend=$(( end / 1000 - interval ))
for round in $(seq 1 "$rounds"); do
  echo "== round $round: $query, $qstart..$qend step ${step}s, $runs runs"
  echo "-- cairn"
  "$bench" query --url http://127.0.0.1:18391/prometheus/api/v1/query_range --tenant bench \
    --query "$query" --start "$qstart" --end "$qend" --step "$step" --runs "$runs"
  echo "-- prometheus"
  "$bench" query --url http://127.0.0.1:18390/api/v1/query_range \
    --query "$query" --start "$qstart" --end "$qend" --step "$step" --runs "$runs"
done
echo "cairn RSS $(rss_kb "$cairn_pid") KB, prometheus RSS $(rss_kb "$prom_pid") KB"
