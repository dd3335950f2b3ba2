#!/usr/bin/env bash
# Ingestion baseline: starts a release cairn on a fresh data dir on loopback,
# sends 10,000 series x 240 samples (15 s apart) in requests of 2,000
# samples with cairn-bench, prints the server's CPU and RSS, stops cairn by PID.
# Usage: scripts/bench-ingest.sh [runs] [extra cairn-bench ingest args...]
# Env: CARGO_TARGET_DIR (where the release binaries are built).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
shift || true
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p cairn -p cairn-bench
port=18190
for run in $(seq 1 "$runs"); do
  dir=$(mktemp -d)
  # The benchmark measures throughput: per-tenant ingestion and series limits off.
  printf 'limits:\n  ingestion_rate: 0\n  max_global_series_per_user: 0\n' >"$dir/cairn.yaml"
  "$target/release/cairn" serve --config "$dir/cairn.yaml" --http.listen-address "127.0.0.1:$port" \
    --storage.path "$dir/data" --log.level warn &
  pid=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break
    sleep 0.1
  done
  echo "== run $run (cairn pid $pid)"
  "$target/release/cairn-bench" ingest --url "http://127.0.0.1:$port/api/v1/push" \
    --pid "$pid" --tenant bench "$@" || true
  echo "disk bytes after ingest: $(du -sb "$dir/data" | cut -f1)"
  kill -TERM "$pid"
  wait "$pid" || true
  rm -rf "$dir"
done
