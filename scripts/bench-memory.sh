#!/usr/bin/env bash
# Memory bounded by active series, not history: RSS of `cairn serve` with
# SERIES live series and no history, then after `cairn import` of DAYS days
# of history for the same series (INTERVAL s apart) into the running server
# (picked up and compacted to 24h blocks), then after a query over the whole
# range.
# 1. `cairn serve` on a fresh data dir; `cairn-bench ingest` sends the live
#    workload (SERIES node-exporter-like series x 240 samples 15 s apart,
#    the last hour); RSS = "no history".
# 2. `cairn-bench history | cairn import -` (the history ends 2h before the
#    live hour starts), wait until the server compacted it; the same live
#    workload is sent again, an hour later in time; RSS = "after import".
# 3. `sum(rate(node_metric_0_total[1h]))` over the whole history at 1h steps
#    (SERIES/100 series); RSS = "after query".
# Each point prints VmRSS, its anonymous and file-mapped parts and the peak;
# with TRIM=1 it then calls glibc's malloc_trim(0) in the server through gdb
# and prints VmRSS again (what is left is live; the difference is freed
# memory the allocator kept).
# Usage: scripts/bench-memory.sh   Env: SERIES (10000), DAYS (30), INTERVAL (300),
# PORT (18491), TRIM, BIN (a folder with prebuilt cairn and cairn-bench), CARGO_TARGET_DIR, TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
series=${SERIES:-10000}
days=${DAYS:-30}
interval=${INTERVAL:-300}
port=${PORT:-18491}
target=${CARGO_TARGET_DIR:-target}
if [ -n "${BIN:-}" ]; then
  bin=$BIN   # prebuilt binaries (e.g. an older build, to compare)
else
  cargo build --release -q -p cairn -p cairn-bench
  bin="$target/release"
fi
bench="$bin/cairn-bench"
cairn="$bin/cairn"
dir=$(mktemp -d "${TMPDIR:-/tmp}/bench-memory.XXXXXX")
hour=3600000
now=$(( $(date +%s) / 3600 * hour ))
live1_end=$(( now - 2 * hour ))
live2_end=$(( now - hour ))
hist_end=$(( (live1_end - 2 * hour) / (2 * hour) * (2 * hour) ))
hist_start=$(( hist_end - days * 24 * hour ))
printf 'storage:\n  maintenance_interval: 5s\nlimits:\n  ingestion_rate: 0\n  max_global_series_per_user: 0\n' >"$dir/cairn.yaml"
"$cairn" serve --config "$dir/cairn.yaml" --storage.path "$dir/cairn" \
  --http.listen-address 127.0.0.1:${port} --log.level warn &
pid=$!; pids+=("$pid")
wait_ready http://127.0.0.1:${port}/ready
point() {
  echo "$1: RSS $(rss_kb "$pid") KB ($(awk '/^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {print "anon " a ", file " f}' "/proc/$pid/status") KB, peak $(hwm_kb "$pid") KB)"
  if [ -n "${TRIM:-}" ]; then
    gdb -p "$pid" -batch -ex 'call (int)malloc_trim(0)' >/dev/null 2>&1 || echo "gdb malloc_trim failed"
    echo "$1, after malloc_trim(0): RSS $(rss_kb "$pid") KB"
  fi
}
point idle

live() {
  "$bench" ingest --url http://127.0.0.1:${port}/api/v1/push --pid "$pid" --tenant bench \
    --series "$series" --scrapes 240 --interval 15 --end-ms "$1" | grep -E 'samples|RSS|failed' || true
}
live "$live1_end"
point "no history, $series active series"

echo "-- import: $series series x $days days at ${interval}s, $hist_start..$hist_end ms"
"$bench" history --series "$series" --start-ms "$hist_start" --end-ms "$hist_end" --interval "$interval" |
  /usr/bin/time -f 'cairn import: %e s wall, max RSS %M KB' \
    "$cairn" import --storage.path "$dir/cairn" --tenant bench -
# The history's first and last days are partial, and where their 2h blocks
# end up (12h, 24h or still 2h) depends on the time of day, so wait for
# compaction to settle rather than for a block count.
wait_blocks "$dir/cairn/tenants/bench/blocks" $(( days + 10 )) 1800
wait_blocks_settled "$dir/cairn/tenants/bench/blocks" 600 30
echo "blocks: $(count_blocks "$dir/cairn/tenants/bench/blocks"), $(du -sh "$dir/cairn/tenants/bench/blocks" | cut -f1)"
point "after import"
live "$live2_end"
point "after import + live"

"$bench" query --url http://127.0.0.1:${port}/api/v1/query_range --tenant bench \
  --query 'sum(rate(node_metric_0_total[1h]))' --start $(( hist_start / 1000 )) \
  --end $(( live2_end / 1000 )) --step 3600 --runs 1
point "after query"
if [ -z "${TRIM:-}" ] && command -v gdb >/dev/null; then
  TRIM=1 point "after query"
fi
