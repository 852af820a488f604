#!/usr/bin/env bash
# The message path's cost, measured with a load tool this project did not
# write (../shared/tools/peer-bench): a fresh embedded server, 1,000 users
# (USERS) sending 1:1 messages at RATE msg/s for 30 s, then per delivered
# message: log records, RocksDB write calls, keys and bytes written (the
# server's own counters) and server CPU (utime + stime of the process).
#
#   infra/scripts/bench-peer.sh RATE [OUT_DIR]
#
# Prints peer-bench's table row and one JSON line of per-message figures.
# The server's store (~700 MB after a run at 5,000 msg/s) is removed at
# the end unless KEEP_DATA=1 (to run `missive rebuild` on it, say).
# MISSIVE_BIN picks the server binary (default: the one the README builds);
# PEER_BENCH the load tool (default: built by its own build script).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
RATE=${1:?usage: bench-peer.sh RATE [OUT_DIR]}
OUT=${2:-$(mktemp -d)}
USERS=${USERS:-1000}
PORT=${PORT:-9400}
BIN=${MISSIVE_BIN:-$CARGO_TARGET_DIR/debug/missive}
PB=${PEER_BENCH:-$("$MISSIVE_ROOT/../shared/tools/peer-bench/scripts/build.sh")}
[ -x "$BIN" ] || { echo "no server binary at $BIN: run cargo build --workspace first" >&2; exit 1; }
mkdir -p "$OUT"
rm -rf "$OUT/data"
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$OUT/data" --sms-sink "file:$OUT/sms.jsonl" \
  --otp-per-address-per-hour 100000000 --verify-per-address-per-hour 100000000 --allow-plaintext >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$OUT/data"' EXIT
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
counters() {
  curl -fs "http://127.0.0.1:$PORT/metrics" | awk '/^missive_log_(records_appended|writes|write_keys|write_bytes)_total /{printf "%s=%s ", $1, $2}'
  awk '{printf "cpu_ticks=%d\n", $14 + $15}' "/proc/$SERVER/stat"
}
sleep 1.2 # the counters are refreshed every second
before=$(counters)
"$PB" run --target missive --addr "127.0.0.1:$PORT" --sms-file "$OUT/sms.jsonl" --users "$USERS" \
  --rate "$RATE" --duration 30 --server-pid "$SERVER" --label "missive-$RATE" --json-out "$OUT/result.jsonl"
sleep 1.2
after=$(counters)
python3 - "$OUT/result.jsonl" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import json, sys
row = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
parse = lambda text: {k: float(v) for k, v in (item.split("=") for item in text.split())}
before, after, tck = parse(sys.argv[2]), parse(sys.argv[3]), float(sys.argv[4])
delta = {k: after[k] - before[k] for k in after}
# Every message sent in the run (warm-up included) was delivered (lost = 0 is checked by the row).
messages = row["sent"] * (row["duration_s"] + 2.0) / row["duration_s"]
per = lambda key: round(delta[key] / messages, 2)
print(json.dumps({
    "rate": row["rate_target"], "delivered_per_s": row["delivered_per_s"], "lost": row["lost"], "dup": row["dup"],
    "p50_ms": row["lat_ms"]["p50"], "p99_ms": row["lat_ms"]["p99"], "p99_sched_ms": row["lat_sched_ms"]["p99"],
    "per_message": {
        "log_records": per("missive_log_records_appended_total"),
        "rocksdb_writes": per("missive_log_writes_total"),
        "rocksdb_keys": per("missive_log_write_keys_total"),
        "rocksdb_bytes": per("missive_log_write_bytes_total"),
        "server_cpu_us": round(delta["cpu_ticks"] / tck * 1e6 / messages, 1),
    },
    "server_cpu_cores": row["server_cpu_cores"], "client_cpu_cores": row["client_cpu_cores"],
}))
PY
