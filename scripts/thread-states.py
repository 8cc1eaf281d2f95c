#!/usr/bin/env python3
"""What the threads of a running huifu process are doing, sampled from /proc.

    scripts/thread-states.py PID SECONDS

Every 10 ms for SECONDS, reads the state of each of PID's threads named huifu-writer,
huifu-store-put or fjall:* (`/proc/PID/task/TID/stat`) and, when it is not running, the system
call it waits in (`/proc/PID/task/TID/syscall`: 75 is fdatasync, 202 futex). Prints, per
thread, the share of samples in each: `R` is running or waiting for a core. Threads that start
after the first sample (a put's thread) are not followed.
"""

import collections
import os
import sys
import time


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    pid, seconds = sys.argv[1], float(sys.argv[2])
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            name = f.read().strip()
        if name.startswith(("huifu-writer", "huifu-store-put", "fjall")):
            threads[tid] = name
    counts = collections.defaultdict(collections.Counter)
    end = time.time() + seconds
    while time.time() < end:
        for tid, name in threads.items():
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
                with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                    call = f.read().split()[0]
            except OSError:
                continue
            counts[f"{name} {tid}"][state if state == "R" else f"{state} syscall {call}"] += 1
        time.sleep(0.01)
    for thread, c in counts.items():
        total = sum(c.values())
        shares = ", ".join(f"{k} {v * 100 / total:.0f}%" for k, v in c.most_common(6))
        print(f"{thread}: {shares}")


if __name__ == "__main__":
    main()
