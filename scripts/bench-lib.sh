# Shared helpers of the storage benchmarks (sourced, not run).
# Every server a script starts is recorded in `pids` and stopped by PID.
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  [ -n "${dir:-}" ] && [ -z "${KEEP:-}" ] && rm -rf "$dir"
}
trap cleanup EXIT

wait_ready() {
  for _ in $(seq 1 600); do
    curl -sf "$1" >/dev/null && return 0
    sleep 0.1
  done
  echo "not ready: $1" >&2
  return 1
}

# Stops one server by PID and waits for it.
stop() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Block directories (ULID-named) under $1.
count_blocks() {
  find "$1" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9A-Z]{26}' | wc -l
}

# Waits (at most $3 seconds) until $1 holds at most $2 blocks and no temporary directory.
wait_blocks() {
  for _ in $(seq 1 "$3"); do
    if [ "$(count_blocks "$1")" -le "$2" ] && ! ls "$1" | grep -q tmp; then
      return 0
    fi
    sleep 1
  done
  echo "blocks in $1 never got down to $2: $(count_blocks "$1")" >&2
  return 1
}

# Waits (at most $2 s) until the number of blocks in $1 has not changed
# for $3 s and no temporary folder is left: compaction has settled.
wait_blocks_settled() {
  local last=-1 still=0
  for _ in $(seq 1 "$2"); do
    local now
    now=$(count_blocks "$1")
    if [ "$now" = "$last" ] && ! ls "$1" | grep -q tmp; then
      still=$((still + 1))
      [ "$still" -ge "$3" ] && return 0
    else
      still=0
    fi
    last=$now
    sleep 1
  done
  echo "blocks in $1 still changing after $2 s: $(count_blocks "$1")" >&2
  return 1
}

# Apparent size in bytes of the block directories under $1 (chunks, index, meta, tombstones).
blocks_bytes() {
  find "$1" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9A-Z]{26}' -print0 |
    du -sbc --files0-from=- | tail -1 | cut -f1
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
