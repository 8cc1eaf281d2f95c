#!/usr/bin/env bash
# A local three-node huifu cluster on loopback, for trying replication out:
#
#   scripts/local-cluster.sh
#
# Writes cluster.toml and an admin key into the folder (default ./cluster, or $1), starts the
# three nodes (HTTP on 127.0.0.1:7071-7073, replication on 7171-7173), prints how to reach
# them, and stops them all on Ctrl-C. Each node's folder and log are in the folder; start the
# script again on it to restart the same cluster.
#
# HUIFU_BIN: a built huifu (default: build the release binary).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${HUIFU_BIN:-}" ]]; then
    (cd "$root" && cargo build --release --bin huifu)
    HUIFU_BIN="${CARGO_TARGET_DIR:-$root/target}/release/huifu"
fi
dir=${1:-./cluster}
mkdir -p "$dir"
if [[ ! -f "$dir/cluster.toml" ]]; then
    for id in 1 2 3; do
        printf '[[node]]\nid = %d\nhttp = "127.0.0.1:707%d"\npeer = "127.0.0.1:717%d"\n\n' \
            "$id" "$id" "$id"
    done >"$dir/cluster.toml"
fi
if [[ ! -f "$dir/admin-key" ]]; then
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/admin-key")
fi

pids=()
stop() {
    echo "stopping the nodes"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT INT TERM
for id in 1 2 3; do
    # Benchmarks drive it with the one admin key: no role's rate limit.
    "$HUIFU_BIN" serve --data-dir "$dir/node-$id" --admin-key-file "$dir/admin-key" \
        --cluster "$dir/cluster.toml" --node "$id" --key-rate-per-second 10000000 \
        >>"$dir/node-$id.log" 2>&1 &
    pids+=($!)
done
for _ in $(seq 1 100); do
    if curl -fs http://127.0.0.1:7071/healthz >/dev/null 2>&1; then
        break
    fi
    sleep 0.1
done
key=$(cat "$dir/admin-key")
cat <<EOF
three nodes on http://127.0.0.1:7071, :7072 and :7073 (logs in $dir/node-N.log)
admin key: $key
  curl -s -H "Authorization: Bearer $key" http://127.0.0.1:7072/v1/cluster
  curl -s -H "Authorization: Bearer $key" -H "Content-Type: application/json" http://127.0.0.1:7073/v1/users -d '{"currency":"CNY"}'
Ctrl-C stops them.
EOF
wait
