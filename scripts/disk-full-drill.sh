#!/usr/bin/env bash
# Disk full, for real: `huifu serve` on a small tmpfs (needs root to mount it) whose space a
# filler file takes, written to until the disk refuses. Checks that the write that hits the
# full disk gets 507 insufficient_storage, that the server stays up, not ready, refusing
# writes and answering reads with every acknowledged write there, and that writes resume on
# the same server once the filler is gone; then audits the folder.
#
#   sudo scripts/disk-full-drill.sh        # SIZE_MB=64 WRITES_MAX=20000 HUIFU_BIN=path
set -euo pipefail

BIN=${HUIFU_BIN:-${CARGO_TARGET_DIR:-target}/debug/huifu}
SIZE_MB=${SIZE_MB:-64}
WRITES_MAX=${WRITES_MAX:-20000}
KEY="disk-full-drill-key-$RANDOM$RANDOM$RANDOM"

mnt=$(mktemp -d)
mount -t tmpfs -o "size=${SIZE_MB}m" tmpfs "$mnt"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  umount "$mnt" || true
  rmdir "$mnt" || true
}
trap cleanup EXIT
[ -n "${KEEP_LOG:-}" ] && trap 'cp "$mnt/serve.err" "$KEEP_LOG"; cleanup' EXIT
data="$mnt/data"

start() {
  HUIFU_ADMIN_KEY="$KEY" "$BIN" serve --data-dir "$data" --listen 127.0.0.1:0 \
    > "$mnt/serve.out" 2> "$mnt/serve.err" &
  server=$!
  url=""
  for _ in $(seq 100); do
    url=$(sed -n 's/^huifu listening on //p' "$mnt/serve.out")
    [ -n "$url" ] && return 0
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  echo "huifu serve did not start:"; cat "$mnt/serve.err"; return 1
}

user() { # prints the HTTP status of one user creation
  curl -s -o "$mnt/reply" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
    -H "Content-Type: application/json" \
    "$url/v1/users" -d '{"currency":"CNY"}' || echo 000
}

start
# Leave a little room: the journal's next segment and checkpoint will not fit.
fallocate -l "$(( $(df --output=avail -B1 "$mnt" | tail -1) - 512 * 1024 ))" "$mnt/filler"
acked=0
status=""
for _ in $(seq "$WRITES_MAX"); do
  status=$(user)
  [ "$status" = 200 ] || break
  acked=$((acked + 1))
  sed -n 's/.*"id":"\(usr_[0-9]*\)".*/\1/p' "$mnt/reply" >> "$mnt/acked"
done
echo "acknowledged $acked users, then status $status: $(cat "$mnt/reply")"
[ "$status" = 507 ] || { echo "FAIL: expected 507 insufficient_storage"; exit 1; }
grep -q insufficient_storage "$mnt/reply" || { echo "FAIL: no insufficient_storage code"; exit 1; }
# The same server stays up: not ready, writes refused, every acknowledged user read back from
# what is durable.
sleep 1
kill -0 "$server" 2>/dev/null || { echo "FAIL: serve exited on a full disk"; cat "$mnt/serve.err"; exit 1; }
ready=$(curl -s -o /dev/null -w '%{http_code}' "$url/healthz")
echo "on the full disk: /healthz $ready, a write gets $(user)"
[ "$ready" = 503 ] || { echo "FAIL: expected /healthz 503"; exit 1; }
[ "$(user)" = 507 ] || { echo "FAIL: expected writes refused with 507"; exit 1; }
missing=0
while read -r id; do
  got=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" "$url/v1/balances/$id")
  [ "$got" = 200 ] || missing=$((missing + 1))
done < "$mnt/acked"
echo "on the full disk: $acked acknowledged users read back, $missing missing"
[ "$missing" = 0 ] || { echo "FAIL: acknowledged users missing"; exit 1; }

# Space again: writes resume on the same server, without a restart.
rm "$mnt/filler"
status=""
for _ in $(seq 50); do
  status=$(user)
  [ "$status" = 200 ] && break
  sleep 0.1
done
echo "after freeing space: status $status, /healthz $(curl -s -o /dev/null -w '%{http_code}' "$url/healthz")"
[ "$status" = 200 ] || { echo "FAIL: writes did not resume"; exit 1; }
kill "$server"; wait "$server" || true; server=""
"$BIN" audit --data-dir "$data"
echo "disk-full drill ok"
