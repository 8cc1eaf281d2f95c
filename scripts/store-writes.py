#!/usr/bin/env python3
"""Where the history store's writes go, and which threads use the CPU, during one run.

    scripts/store-writes.py DATA_DIR -- huifu simulate --payments 30000000 --users 1000000 \\
        --no-reconcile --memory-transfers-max 2000000 --data-dir DATA_DIR --json

Runs the command (DATA_DIR must be its data folder and must not exist yet), and every second
notes each table file of the history store with the largest size it was seen at, and each
thread's CPU time by thread name. At the end it prints, per keyspace, the bytes of every table
file written (flushes, puts and compactions) against the bytes kept at the end, and the CPU
seconds of each thread name. A table file made and deleted within one second is missed, so
the bytes written are a lower bound.

Keyspaces are named by the order in which the store creates them (`HistoryStore::open`, then
`RecordStore::open` with the payment tables in the order of `TABLES` in
crates/payments/src/history.rs, then the lists).
"""

import os
import subprocess
import sys
import time

NAMES = {
    "0": "(fjall's keyspace list)",
    "1": "transfers",
    "2": "id index",
    "3": "account index",
    "4": "payments",
    "5": "coupons",
    "6": "refunds",
    "7": "outcomes",
    "8": "idempotency keys",
    "9": "top-ups and withdrawals",
    "10": "payouts",
    "11": "outcomes of wide ids",
    "12": "lists",
}


def tables(data_dir):
    """(keyspace, file) -> size of every table file now."""
    root = os.path.join(data_dir, "history", "keyspaces")
    found = {}
    if not os.path.isdir(root):
        return found
    for keyspace in os.listdir(root):
        try:
            entries = list(os.scandir(os.path.join(root, keyspace, "tables")))
        except FileNotFoundError:
            continue
        for entry in entries:
            try:
                found[(keyspace, entry.name)] = entry.stat().st_size
            except FileNotFoundError:
                pass
    return found


def thread_cpu(pid):
    """Thread name -> CPU seconds (user and system) summed over the threads of that name."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return cpu
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                stat = f.read()
        except FileNotFoundError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu[name] = cpu.get(name, 0) + (int(fields[11]) + int(fields[12])) / ticks
    return cpu


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit(__doc__)
    data_dir, command = sys.argv[1], sys.argv[3:]
    if os.path.exists(data_dir):
        sys.exit(f"{data_dir} exists: give the run a data folder of its own")
    written = {}
    # A thread's CPU time is kept from its last sample: threads that end take theirs along.
    cpu_by_thread = {}
    child = subprocess.Popen(command)
    while child.poll() is None:
        for key, size in tables(data_dir).items():
            written[key] = max(written.get(key, 0), size)
        for name, seconds in thread_cpu(child.pid).items():
            cpu_by_thread[name] = max(cpu_by_thread.get(name, 0), seconds)
        time.sleep(1)
    kept = {}
    for (keyspace, _), size in tables(data_dir).items():
        kept[keyspace] = kept.get(keyspace, 0) + size
    per_keyspace = {}
    for (keyspace, _), size in written.items():
        per_keyspace[keyspace] = per_keyspace.get(keyspace, 0) + size
    total = sum(per_keyspace.values()) or 1
    print(f"{'keyspace':<24} {'written GB':>10} {'kept GB':>8} {'ratio':>6} {'share':>6}")
    for keyspace, size in sorted(per_keyspace.items(), key=lambda kv: -kv[1]):
        name = NAMES.get(keyspace, keyspace)
        k = kept.get(keyspace, 0)
        ratio = f"{size / k:.1f}" if k else "-"
        print(f"{name:<24} {size / 1e9:>10.2f} {k / 1e9:>8.2f} {ratio:>6} {100 * size / total:>5.0f}%")
    print()
    print("CPU seconds by thread name (the busiest):")
    for name, seconds in sorted(cpu_by_thread.items(), key=lambda kv: -kv[1])[:6]:
        print(f"  {name:<20} {seconds:>8.0f}")
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
