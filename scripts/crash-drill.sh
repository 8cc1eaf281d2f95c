#!/usr/bin/env bash
# Crash drill: run the simulator against `huifu serve`, kill the server with SIGKILL at random
# moments, restart it on the same data folder and port, and prove at the end that nothing
# acknowledged was lost and nothing was applied twice:
#   1. the simulator's own closing check (every acknowledged operation on the server, replays
#      of sampled keys name the same objects),
#   2. one more SIGKILL and restart, then `huifu check-acks` on the ack log,
#   3. `huifu audit` of the stopped server's data folder.
# Exit status 0 only if all three pass.
#
# Knobs (environment): KILLS (3), PAYMENTS (200000), USERS (20000), MERCHANTS (1000),
# RIDERS (2000), CLIENTS (16), SEED (1), KILL_AFTER_MS_MIN (500), KILL_AFTER_MS_MAX (4000),
# MEMORY_TRANSFERS_MAX (100000: ledger transfers the server keeps in memory, the rest in its
# history store),
# HUIFU_BIN (a built huifu; default: build the release binary), DRILL_DIR (default: a new
# temporary folder, kept for inspection).
set -euo pipefail

KILLS=${KILLS:-3}
PAYMENTS=${PAYMENTS:-200000}
USERS=${USERS:-20000}
MERCHANTS=${MERCHANTS:-1000}
RIDERS=${RIDERS:-2000}
CLIENTS=${CLIENTS:-16}
SEED=${SEED:-1}
KILL_AFTER_MS_MIN=${KILL_AFTER_MS_MIN:-500}
KILL_AFTER_MS_MAX=${KILL_AFTER_MS_MAX:-4000}
MEMORY_TRANSFERS_MAX=${MEMORY_TRANSFERS_MAX:-100000}

root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${HUIFU_BIN:-}" ]]; then
    (cd "$root" && cargo build --release --bin huifu)
    HUIFU_BIN="${CARGO_TARGET_DIR:-$root/target}/release/huifu"
fi
work=${DRILL_DIR:-$(mktemp -d -t huifu-drill-XXXXXX)}
mkdir -p "$work"
data="$work/data"
acks="$work/acks.log"
export HUIFU_ADMIN_KEY="crash-drill-admin-$RANDOM$RANDOM$RANDOM"

# A port below the usual ephemeral range (32768 and up) that refuses a connection now; the
# first start tries others if it is taken after all.
pick_port() {
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
    done
    echo "crash drill: no free port found" >&2
    exit 2
}

server=""
start_server() {
    # The simulator drives the server with the one admin key: no role's rate limit.
    "$HUIFU_BIN" serve --data-dir "$data" --listen "127.0.0.1:$port" \
        --memory-transfers-max "$MEMORY_TRANSFERS_MAX" --key-rate-per-second 10000000 \
        >>"$work/serve.log" 2>&1 &
    server=$!
    for _ in $(seq 1 600); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$server" 2>/dev/null; then
            return 1
        fi
        sleep 0.1
    done
    echo "crash drill: the server did not listen within 60 s" >&2
    exit 2
}

crash_and_restart() {
    kill -KILL "$server"
    wait "$server" 2>/dev/null || true
    start_server || { echo "crash drill: the server did not restart (see $work/serve.log)" >&2; exit 2; }
}

cleanup() {
    [[ -n "$server" ]] && kill -KILL "$server" 2>/dev/null || true
}
trap cleanup EXIT

pick_port
for _ in $(seq 1 20); do
    start_server && break
    grep -q "Address already in use" "$work/serve.log" || { echo "crash drill: the server did not start (see $work/serve.log)" >&2; exit 2; }
    pick_port
done
url="http://127.0.0.1:$port"
echo "crash drill in $work: $PAYMENTS payments, $KILLS kills, server at $url"
"$HUIFU_BIN" simulate --server "$url" --ack-log "$acks" --payments "$PAYMENTS" --users "$USERS" \
    --merchants "$MERCHANTS" --riders "$RIDERS" --clients "$CLIENTS" --seed "$SEED" --json \
    >"$work/simulate.json" 2>"$work/simulate.log" &
simulator=$!

kills=0
started=$(date +%s%N)
for _ in $(seq 1 "$KILLS"); do
    ms=$(( KILL_AFTER_MS_MIN + (RANDOM * 32768 + RANDOM) % (KILL_AFTER_MS_MAX - KILL_AFTER_MS_MIN + 1) ))
    sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
    if ! kill -0 "$simulator" 2>/dev/null; then
        break
    fi
    down=$(date +%s%N)
    crash_and_restart
    kills=$((kills + 1))
    echo "kill -9 $kills at $(( (down - started) / 1000000 )) ms; back after $(( ($(date +%s%N) - down) / 1000000 )) ms"
done

failed=0
if wait "$simulator"; then
    echo "simulator: ok ($(grep -c . "$acks") acknowledged operations)"
else
    echo "simulator: FAILED (see $work/simulate.log)"
    tail -n 20 "$work/simulate.log"
    failed=1
fi
tail -n 1 "$work/simulate.json" || true
if (( kills < KILLS )); then
    echo "warning: the run ended after $kills of $KILLS kills; raise PAYMENTS for more"
fi

# One more crash after the last acknowledgement: what was acknowledged must survive it too.
crash_and_restart
if "$HUIFU_BIN" check-acks --server "$url" --ack-log "$acks"; then
    echo "check-acks after a final kill -9: ok"
else
    echo "check-acks after a final kill -9: FAILED"
    failed=1
fi
kill -TERM "$server"
wait "$server" 2>/dev/null || true
server=""
if "$HUIFU_BIN" audit --data-dir "$data"; then
    echo "audit of the data folder: ok"
else
    echo "audit of the data folder: FAILED"
    failed=1
fi
if (( failed )); then
    echo "crash drill FAILED ($kills kills); everything is in $work"
    exit 1
fi
echo "crash drill passed: $kills kills during the run, nothing acknowledged lost, nothing applied twice"
