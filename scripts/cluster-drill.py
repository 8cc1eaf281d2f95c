#!/usr/bin/env python3
"""Failover drill of a three-node huifu cluster on loopback.

Starts three `huifu serve --cluster` nodes and runs the simulator against all of them
(`huifu simulate --server URL,URL,URL --ack-log`). Then, KILLS times: finds the leader, kills it
with SIGKILL, and measures the failover: from the kill to the first write acknowledged by the
cluster afterwards (a probe that creates a user, with its own idempotency key, sent to the
surviving nodes in turn until one answers 200). The killed node is restarted on its folder and
must catch up before the next kill.

At the end: every probe user acknowledged is there, `huifu check-acks` finds every operation
the simulator got acknowledged, all nodes reach the same applied index with the same digest,
and `huifu audit` passes on every node's folder. Prints each failover time and their p50, p90
and maximum. Exit status 0 only if every check passes and every failover took under
FAILOVER_MAX_MS.

Environment: KILLS (50), FAILOVER_MAX_MS (2000), PAYMENTS (load of the simulator, 400000),
CLIENTS (8), USERS (5000), MERCHANTS (200), RIDERS (500), HUIFU_BIN (default: build the release binary), DRILL_DIR (default: a new temporary
folder, kept for inspection), PAUSE_MS_MIN / PAUSE_MS_MAX (between a node's return and the next
kill: 500 / 2000).
"""

import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

KILLS = int(os.environ.get("KILLS", "50"))
FAILOVER_MAX_MS = int(os.environ.get("FAILOVER_MAX_MS", "2000"))
PAYMENTS = int(os.environ.get("PAYMENTS", "400000"))
CLIENTS = int(os.environ.get("CLIENTS", "8"))
USERS = int(os.environ.get("USERS", "5000"))
MERCHANTS = int(os.environ.get("MERCHANTS", "200"))
RIDERS = int(os.environ.get("RIDERS", "500"))
PAUSE_MS_MIN = int(os.environ.get("PAUSE_MS_MIN", "500"))
PAUSE_MS_MAX = int(os.environ.get("PAUSE_MS_MAX", "2000"))
# Bounds of every wait, so that the drill always ends.
PROBE_TIMEOUT_S = 30
CATCH_UP_TIMEOUT_S = 120
START_TIMEOUT_S = 60

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def huifu_bin():
    if os.environ.get("HUIFU_BIN"):
        return os.environ["HUIFU_BIN"]
    subprocess.run(["cargo", "build", "--release", "--bin", "huifu"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "huifu")


def free_port():
    """A free port below the ephemeral range (32768 and up): a node restarted on a port the
    kernel had meanwhile given to some connection's local end could not listen on it."""
    for _ in range(1000):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port between 20000 and 32000")


class Cluster:
    def __init__(self, exe, work, key):
        self.exe, self.work, self.key = exe, work, key
        self.key_file = os.path.join(work, "admin-key")
        with open(self.key_file, "w") as f:
            f.write(key)
        self.nodes = {}
        lines = []
        for node in (1, 2, 3):
            http, peer = free_port(), free_port()
            self.nodes[node] = {"url": f"http://127.0.0.1:{http}", "proc": None}
            lines += [
                "[[node]]",
                f"id = {node}",
                f'http = "127.0.0.1:{http}"',
                f'peer = "127.0.0.1:{peer}"',
            ]
        self.toml = os.path.join(work, "cluster.toml")
        with open(self.toml, "w") as f:
            f.write("\n".join(lines) + "\n")

    def urls(self, nodes=None):
        return [self.nodes[n]["url"] for n in (nodes or self.nodes)]

    def start(self, node):
        log = open(os.path.join(self.work, f"node-{node}.log"), "a")
        self.nodes[node]["proc"] = subprocess.Popen(
            [self.exe, "serve", "--data-dir", self.folder(node), "--admin-key-file",
             self.key_file, "--cluster", self.toml, "--node", str(node),
             # The simulator drives the cluster with the one admin key: no role's rate limit.
             "--key-rate-per-second", "10000000"],
            stdout=subprocess.DEVNULL, stderr=log)

    def folder(self, node):
        return os.path.join(self.work, f"node-{node}")

    def kill(self, node):
        proc = self.nodes[node]["proc"]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.nodes[node]["proc"] = None

    def stop_all(self):
        for node in self.nodes.values():
            if node["proc"]:
                node["proc"].send_signal(signal.SIGTERM)
        for node in self.nodes.values():
            if node["proc"]:
                try:
                    node["proc"].wait(timeout=30)
                except subprocess.TimeoutExpired:
                    node["proc"].kill()
                    node["proc"].wait()
                node["proc"] = None

    def request(self, url, method, path, body=None, idempotency_key=None, timeout=2.0):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.key}")
        if idempotency_key:
            req.add_header("Idempotency-Key", idempotency_key)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, None
        except (urllib.error.URLError, OSError, ValueError):
            return None, None

    def view(self, nodes=None):
        """/v1/cluster from the first live node that answers."""
        for url in self.urls(nodes):
            status, view = self.request(url, "GET", "/v1/cluster")
            if status == 200:
                return view
        return None

    def leader(self, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            view = self.view([n for n in self.nodes if self.nodes[n]["proc"]])
            if view and view.get("leader"):
                return view["leader"]
            time.sleep(0.05)
        return None

    def rejoined(self, node, timeout_s):
        """Waits until `node` has applied what the cluster had committed when it came back
        (under load the nodes never stand still at one index); returns the view."""
        deadline = time.monotonic() + timeout_s
        target, view = None, None
        while time.monotonic() < deadline:
            view = self.view()
            nodes = {n["id"]: n for n in (view or {}).get("nodes", [])}
            if target is None and view and view.get("leader") in nodes:
                target = nodes[view["leader"]]["commit"]
            applied = nodes.get(node, {}).get("applied")
            if target is not None and applied is not None and applied >= target:
                return True, view
            time.sleep(0.05)
        return False, view

    def caught_up(self, timeout_s):
        """Waits until every node reports the same applied index and digest; returns the view."""
        deadline = time.monotonic() + timeout_s
        view = None
        while time.monotonic() < deadline:
            view = self.view()
            nodes = (view or {}).get("nodes", [])
            if len(nodes) == 3 and len({(n["applied"], n["digest"]) for n in nodes}) == 1 \
                    and nodes[0]["applied"] is not None:
                return True, view
            time.sleep(0.1)
        return False, view


def main():
    exe = huifu_bin()
    work = os.environ.get("DRILL_DIR") or tempfile.mkdtemp(prefix="huifu-cluster-drill-")
    os.makedirs(work, exist_ok=True)
    key = f"cluster-drill-admin-{random.getrandbits(64):016x}"
    cluster = Cluster(exe, work, key)
    for node in cluster.nodes:
        cluster.start(node)
    print(f"cluster drill in {work}: {KILLS} leader kills, nodes {', '.join(cluster.urls())}")
    failed = False
    simulator = None
    try:
        if not cluster.leader(START_TIMEOUT_S):
            print("no leader after start")
            return 2
        acks = os.path.join(work, "acks.log")
        env = dict(os.environ, HUIFU_ADMIN_KEY=key)
        simulator = subprocess.Popen(
            [exe, "simulate", "--server", ",".join(cluster.urls()), "--ack-log", acks,
             "--payments", str(PAYMENTS), "--clients", str(CLIENTS), "--users", str(USERS),
             "--merchants", str(MERCHANTS), "--riders", str(RIDERS), "--json"],
            stdout=open(os.path.join(work, "simulate.json"), "w"),
            stderr=open(os.path.join(work, "simulate.log"), "w"), env=env)

        failovers, probes = [], []
        for kill in range(1, KILLS + 1):
            leader = cluster.leader(START_TIMEOUT_S)
            if leader is None:
                print(f"kill {kill}: no leader to kill")
                failed = True
                break
            cluster.kill(leader)
            killed_at = time.monotonic()
            survivors = [n for n in cluster.nodes if n != leader]
            probe = f"drill-probe-{kill}"
            acked = None
            tries = 0
            while time.monotonic() - killed_at < PROBE_TIMEOUT_S:
                url = cluster.nodes[survivors[tries % 2]]["url"]
                tries += 1
                status, body = cluster.request(url, "POST", "/v1/users", {"currency": "CNY"},
                                               idempotency_key=probe, timeout=1.0)
                if status == 200:
                    acked = time.monotonic() - killed_at
                    probes.append((probe, body["id"]))
                    break
                time.sleep(0.01)
            if acked is None:
                print(f"kill {kill}: node {leader} killed; no write acknowledged in "
                      f"{PROBE_TIMEOUT_S} s")
                failed = True
                break
            new_leader = cluster.leader(5)
            failovers.append(acked * 1000)
            print(f"kill {kill}: leader {leader} killed; new leader {new_leader}; first "
                  f"acknowledged write after {acked * 1000:.0f} ms ({tries} tries)", flush=True)
            cluster.start(leader)
            ok, view = cluster.rejoined(leader, CATCH_UP_TIMEOUT_S)
            if not ok:
                print(f"kill {kill}: node {leader} did not catch up within {CATCH_UP_TIMEOUT_S} s: "
                      f"{view}")
                failed = True
                break
            time.sleep(random.uniform(PAUSE_MS_MIN, PAUSE_MS_MAX) / 1000)

        if simulator.poll() is None:
            print("stopping the simulator's day (SIGINT: it closes with its own checks)")
            simulator.send_signal(signal.SIGINT)
        try:
            status = simulator.wait(timeout=300)
        except subprocess.TimeoutExpired:
            simulator.kill()
            status = simulator.wait()
        acked_ops = sum(1 for _ in open(acks)) if os.path.exists(acks) else 0
        print(f"simulator: exit {status}, {acked_ops} acknowledged operations")
        if status != 0:
            print(f"simulator FAILED (see {work}/simulate.log)")
            failed = True

        check = subprocess.run([exe, "check-acks", "--server", ",".join(cluster.urls()),
                                "--ack-log", acks], env=env)
        if check.returncode != 0:
            print("check-acks FAILED")
            failed = True
        missing = []
        for probe, user in probes:
            status, body = cluster.request(cluster.nodes[1]["url"], "POST", "/v1/users",
                                           {"currency": "CNY"}, idempotency_key=probe)
            if status != 200 or body["id"] != user:
                missing.append((probe, user, status, body))
        print(f"probes: {len(probes) - len(missing)} of {len(probes)} acknowledged users "
              f"answered again with the same id")
        if missing:
            print(f"probes FAILED: {missing[:5]}")
            failed = True
        ok, view = cluster.caught_up(CATCH_UP_TIMEOUT_S)
        print(f"nodes agree: {ok}: " + ", ".join(
            f"node {n['id']} applied {n['applied']} digest {n['digest'][:16]}"
            for n in (view or {}).get("nodes", [])))
        failed |= not ok
        cluster.stop_all()
        for node in cluster.nodes:
            audit = subprocess.run([exe, "audit", "--data-dir", cluster.folder(node)],
                                   capture_output=True, text=True)
            print(f"audit node {node}: {audit.stdout.strip()} "
                  f"({audit.stderr.strip().splitlines()[-1] if audit.stderr.strip() else ''})")
            failed |= audit.returncode != 0

        if failovers:
            ordered = sorted(failovers)
            p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
            print(f"failover ms over {len(ordered)} leader kills: p50 "
                  f"{statistics.median(ordered):.0f}  p90 {p90:.0f}  max {ordered[-1]:.0f}  "
                  f"min {ordered[0]:.0f}")
            slow = [f for f in failovers if f >= FAILOVER_MAX_MS]
            if slow:
                print(f"{len(slow)} failovers took {FAILOVER_MAX_MS} ms or more")
                failed = True
        if len(failovers) < KILLS:
            failed = True
    finally:
        if simulator and simulator.poll() is None:
            simulator.kill()
        cluster.stop_all()
    print("cluster drill FAILED" if failed else "cluster drill ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
