#!/usr/bin/env bash
# Bytes on disk per sample after compaction, Cairn vs Prometheus vs
# VictoriaMetrics, on the same generated node-exporter-like history
# (`cairn-bench history`: SERIES series, HOURS hours at INTERVAL s, starting
# at a UTC midnight four days ago).
# - Cairn: `cairn import` from standard input, then `cairn serve` (maintenance
#   every second) compacts the 2h blocks to 24h; size of the blocks.
# - Prometheus: the same data as OpenMetrics in a file, `promtool tsdb
#   create-blocks-from openmetrics --max-block-duration=24h` (24h blocks
#   directly, as compacted); size of the blocks.
# - VictoriaMetrics: the same data as Prometheus text streamed to
#   /api/v1/import/prometheus, then /internal/force_flush and
#   /internal/force_merge; size of data/ and indexdb/.
# Usage: scripts/bench-storage.sh   Env: SERIES (1000), HOURS (48), INTERVAL (15),
# CARGO_TARGET_DIR, TMPDIR, KEEP (keep the data dirs).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
series=${SERIES:-1000}
hours=${HOURS:-48}
interval=${INTERVAL:-15}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p cairn -p cairn-bench
bench="$target/release/cairn-bench"
cairn="$target/release/cairn"
dir=$(mktemp -d "${TMPDIR:-/tmp}/bench-storage.XXXXXX")
day=86400000
start=$(( ($(date +%s) / 86400 - 4) * day ))
end=$(( start + hours * 3600000 ))
samples=$(( series * hours * 3600 / interval ))
history=("$bench" history --series "$series" --start-ms "$start" --end-ms "$end" --interval "$interval")
echo "== $series series x $hours h at ${interval}s = $samples samples, $start..$end ms"

echo "-- cairn import (stdin)"
"${history[@]}" | /usr/bin/time -f 'import: %e s wall, %U s user, max RSS %M KB' \
  "$cairn" import --storage.path "$dir/cairn" --tenant bench -
printf 'storage:\n  maintenance_interval: 1s\nlimits:\n  ingestion_rate: 0\n  max_global_series_per_user: 0\n' >"$dir/cairn.yaml"
"$cairn" serve --config "$dir/cairn.yaml" --storage.path "$dir/cairn" \
  --http.listen-address 127.0.0.1:18291 --log.level warn &
cairn_pid=$!; pids+=("$cairn_pid")
wait_ready http://127.0.0.1:18291/ready
wait_blocks "$dir/cairn/tenants/bench/blocks" $(( (hours + 23) / 24 )) 900
stop "$cairn_pid"
blocks="$dir/cairn/tenants/bench/blocks"
cairn_bytes=$(blocks_bytes "$blocks")
cairn_samples=$(cat "$blocks"/*/meta.json | grep -o '"numSamples": [0-9]*' | awk '{s+=$2} END {print s}')
cairn_index=$(du -sbc "$blocks"/*/index | tail -1 | cut -f1)
echo "cairn: $(count_blocks "$blocks") blocks, $cairn_samples samples, $cairn_bytes bytes (index $cairn_index)"

echo "-- prometheus: promtool create-blocks-from openmetrics"
"${history[@]}" >"$dir/history.om"
/usr/bin/time -f 'promtool: %e s wall, max RSS %M KB' \
  promtool tsdb create-blocks-from openmetrics --max-block-duration=24h -q "$dir/history.om" "$dir/prom"
rm "$dir/history.om"
prom_bytes=$(blocks_bytes "$dir/prom")
prom_samples=$(cat "$dir"/prom/*/meta.json | grep -o '"numSamples": [0-9]*' | awk '{s+=$2} END {print s}')
prom_index=$(du -sbc "$dir"/prom/*/index | tail -1 | cut -f1)
echo "prometheus: $(count_blocks "$dir/prom") blocks, $prom_samples samples, $prom_bytes bytes (index $prom_index)"

echo "-- victoriametrics: /api/v1/import/prometheus"
victoria-metrics -storageDataPath="$dir/vm" -httpListenAddr=127.0.0.1:18428 -retentionPeriod=10y \
  -loggerLevel=ERROR &
vm_pid=$!; pids+=("$vm_pid")
wait_ready http://127.0.0.1:18428/health
"$bench" history --series "$series" --start-ms "$start" --end-ms "$end" --interval "$interval" --format prometheus |
  curl -sf -X POST -T - http://127.0.0.1:18428/api/v1/import/prometheus
curl -sf http://127.0.0.1:18428/internal/force_flush
sleep 5
partitions=$(ls "$dir/vm/data/big" 2>/dev/null | grep -E '^[0-9]{4}_[0-9]{2}$' || true)
for p in $partitions; do curl -sf "http://127.0.0.1:18428/internal/force_merge?partition_prefix=$p"; done
sleep 20
vm_rows=$(curl -sf http://127.0.0.1:18428/metrics | grep -E '^vm_rows\{type="storage/(big|small)"\}' | awk '{s+=$2} END {print s}')
stop "$vm_pid"
vm_bytes=$(du -sbc "$dir/vm/data" "$dir/vm/indexdb" | tail -1 | cut -f1)
echo "victoriametrics: $vm_rows rows, $vm_bytes bytes (data/ + indexdb/)"

echo "== bytes per sample"
awk -v c="$cairn_bytes" -v cs="$cairn_samples" -v p="$prom_bytes" -v ps="$prom_samples" -v v="$vm_bytes" -v vs="$vm_rows" \
  'BEGIN { printf "cairn %.3f, prometheus %.3f, victoriametrics %.3f\n", c/cs, p/ps, v/vs }'
