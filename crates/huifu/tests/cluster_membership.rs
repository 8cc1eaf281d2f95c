//! A three-node cluster of the real `huifu serve`: a follower read says how far behind it may
//! be, `/metrics` reports replication, and a dead node is replaced by a new one through the
//! API (`POST /v1/cluster/nodes` on a follower, `DELETE /v1/cluster/nodes/{id}`) without
//! stopping the cluster; the new node then holds the state and counts toward the majority.
//! `huifu bench http` given every node's URL rides a leader kill, each payment made once.

#[path = "support/cluster.rs"]
mod cluster;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster::{agent, request, Cluster, ADMIN};
use serde_json::{json, Value};

const READY_WITHIN: Duration = Duration::from_secs(30);

/// Creates a user through node `id` (retrying the same key while the cluster has no leader);
/// returns its id.
fn create_user(cluster: &Cluster, id: u64, key: &str) -> String {
    let agent = agent(Duration::from_secs(5));
    let url = format!("{}/v1/users", cluster.node(id).url());
    let body = json!({"currency": "CNY"}).to_string();
    let started = Instant::now();
    loop {
        let answer = request(&agent, "POST", &url, Some(&body), &[("Idempotency-Key", key)]);
        match answer {
            Ok((200, user)) => return user["id"].as_str().unwrap().to_owned(),
            other => {
                assert!(started.elapsed() < READY_WITHIN, "{key} via node {id}: {other:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn member_ids(view: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> =
        view["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    ids
}

#[test]
fn a_dead_node_is_replaced_through_the_api_and_follower_reads_say_how_far_behind() {
    let mut cluster = Cluster::start_with_spares(3, 1);
    let leader = cluster.wait_ready(READY_WITHIN);
    let follower = cluster.ids().into_iter().find(|&id| id != leader).unwrap();
    let user = create_user(&cluster, follower, "membership-1");

    // A follower read: served by the follower itself, with its position.
    let agent = agent(Duration::from_secs(5));
    let url = format!("{}/v1/balances/{user}", cluster.node(follower).url());
    let started = Instant::now();
    let response = loop {
        let response = agent
            .get(&url)
            .set("Authorization", &format!("Bearer {ADMIN}"))
            .set("Huifu-Read-Consistency", "follower")
            .call();
        match response {
            Ok(r) => break r,
            // Not applied on the follower yet.
            Err(ureq::Error::Status(404, _)) if started.elapsed() < READY_WITHIN => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("follower read: {e}"),
        }
    };
    let applied: u64 = response.header("Huifu-Applied-Index").unwrap().parse().unwrap();
    let behind: u64 = response.header("Huifu-Entries-Behind").unwrap().parse().unwrap();
    assert!(applied > 0, "applied index {applied}");
    assert!(behind < 1_000, "entries behind {behind}");

    // /metrics reports the node's part in replication.
    let metrics = agent.get(&format!("{}/metrics", cluster.node(leader).url())).call().unwrap();
    let metrics = metrics.into_string().unwrap();
    for name in [
        "huifu_raft_is_leader 1",
        "huifu_raft_applied_index",
        "huifu_raft_commit_index",
        "huifu_raft_elections_total",
        "huifu_raft_proposal_seconds",
        "huifu_replication_lag_entries",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }

    // Node 3 dies for good; node 4 starts empty and joins.
    cluster.kill(3);
    cluster.start_node(4);
    let leader = cluster.leader(READY_WITHIN);
    let asked = if leader == 1 { 2 } else { 1 }; // a follower: the call is forwarded
    let (new_peer, new_http) = (cluster.node(4).peer.to_string(), cluster.node(4).http.to_string());
    let body = json!({"id": 4, "peer": new_peer, "http": new_http});
    let add_url = format!("{}/v1/cluster/nodes", cluster.node(asked).url());
    let started = Instant::now();
    let view = loop {
        match request(&agent, "POST", &add_url, Some(&body.to_string()), &[]) {
            Ok((200, view)) => break view,
            // Node 4 still opening its folder or catching up: asking again goes on.
            Ok((503, _)) | Err(_) if started.elapsed() < READY_WITHIN => {
                std::thread::sleep(Duration::from_millis(200));
            }
            other => panic!("adding node 4: {other:?}"),
        }
    };
    assert_eq!(member_ids(&view), [1, 2, 3, 4], "{view}");
    let remove_url = format!("{}/v1/cluster/nodes/3", cluster.node(asked).url());
    let (status, view) = request(&agent, "DELETE", &remove_url, None, &[]).unwrap();
    assert_eq!(status, 200, "{view}");
    assert_eq!(member_ids(&view), [1, 2, 4], "{view}");
    cluster.members = vec![1, 2, 4];

    // Bad requests change nothing.
    let taken = json!({"id": 4, "peer": cluster.node(1).peer.to_string(), "http": new_http});
    let (status, error) = request(&agent, "POST", &add_url, Some(&taken.to_string()), &[]).unwrap();
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("membership_conflict")));
    let loose = format!("{}/v1/cluster/nodes/03", cluster.node(asked).url());
    let (status, error) = request(&agent, "DELETE", &loose, None, &[]).unwrap();
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("invalid_id")), "{error}");
    let bad = json!({"id": 5, "peer": "nowhere", "http": new_http});
    let (status, error) = request(&agent, "POST", &add_url, Some(&bad.to_string()), &[]).unwrap();
    assert_eq!((status, error["error"]["param"].as_str()), (400, Some("peer")));

    // The new node has the state and agrees with the others.
    let second = create_user(&cluster, 4, "membership-2");
    cluster.wait_converged(READY_WITHIN);

    // It counts toward the majority: the leader killed, node 4 and the other old node elect
    // one of themselves and take writes.
    let leader = cluster.leader(READY_WITHIN);
    cluster.kill(leader);
    cluster.members.retain(|&id| id != leader);
    let survivor = cluster.members[0];
    create_user(&cluster, survivor, "membership-3");
    // The earlier writes are there, and a retry gets its first outcome.
    assert_eq!(create_user(&cluster, survivor, "membership-2"), second);
    assert_eq!(create_user(&cluster, survivor, "membership-1"), user);
}

#[test]
fn bench_http_over_every_node_rides_a_leader_kill_and_pays_each_payment_once() {
    const PAYMENTS: u64 = 40_000;
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready(READY_WITHIN);
    let bench = Command::new(env!("CARGO_BIN_EXE_huifu"))
        .args(["bench", "http", "--url", &cluster.urls().join(","), "--api-key", ADMIN])
        .args(["--payments", &PAYMENTS.to_string(), "--batch", "50", "--connections", "4"])
        .args(["--users", "400", "--merchants", "10", "--riders", "10", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once payments flow (the set-up makes a few thousand entries), the leader goes.
    let started = Instant::now();
    loop {
        let view = cluster.view(leader).expect("the leader answers");
        let applied = view["nodes"].as_array().unwrap().iter().find(|n| n["id"] == leader).unwrap()
            ["applied"]
            .as_u64()
            .unwrap_or(0);
        if applied > 1_200 {
            break;
        }
        assert!(started.elapsed() < READY_WITHIN, "no payments yet: {view}");
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.kill(leader);
    let output = bench.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench http failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["payments"], PAYMENTS, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    let retries = report["retries"].as_u64().unwrap() + report["setup_retries"].as_u64().unwrap();
    assert!(retries > 0, "the leader was killed during the run, yet nothing was sent again");

    // Each payment was made once: the audit of a node's folder counts them, once the two
    // nodes left are at the same position.
    let node = cluster.ids().into_iter().find(|&id| id != leader).unwrap();
    let started = Instant::now();
    loop {
        let view = cluster.view(node).unwrap_or_default();
        let live: Vec<&Value> = view["nodes"]
            .as_array()
            .map(|nodes| nodes.iter().filter(|n| n["role"] != "unreachable").collect())
            .unwrap_or_default();
        let same = live.len() == 2
            && live[0]["applied"].is_u64()
            && live[0]["applied"] == live[1]["applied"]
            && live[0]["digest"] == live[1]["digest"];
        if same {
            break;
        }
        assert!(started.elapsed() < READY_WITHIN, "the two nodes left differ: {view}");
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.kill(node);
    let (ok, text) = cluster::audit(&cluster.node(node).data_dir());
    assert!(ok, "{text}");
    assert!(text.contains(&format!("{PAYMENTS} payments")), "{text}");
}

/// A call to `url` with `key`, as a follower read when `follower`: the status and the error
/// code (or the body's `id`), or why it got no answer.
fn call_with(
    method: &str,
    url: &str,
    key: &str,
    follower: bool,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let agent = agent(Duration::from_secs(5));
    let mut request = agent.request(method, url).set("Authorization", &format!("Bearer {key}"));
    if follower {
        request = request.set("Huifu-Read-Consistency", "follower");
    }
    let result = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => {
            let status = r.status();
            r.into_json::<Value>().map(|v| (status, v)).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Retries `call` until it answers `status` (a cluster electing a leader, a follower not yet
/// at the entry); returns the body.
fn until(status: u16, what: &str, call: impl Fn() -> Result<(u16, Value), String>) -> Value {
    let started = Instant::now();
    loop {
        let answer = call();
        match &answer {
            Ok((s, v)) if *s == status => return v.clone(),
            _ => {
                assert!(started.elapsed() < READY_WITHIN, "{what}: {answer:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Key changes go through the log: the admin key every node was given, replaced and revoked
/// through followers, is refused by every node (the leader, and each node's own follower
/// reads), and a node restarted with the same key file refuses it from its first answer.
#[test]
fn a_revoked_key_is_refused_by_every_node_and_after_a_restart() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready(READY_WITHIN);
    let followers: Vec<u64> = cluster.ids().into_iter().filter(|&id| id != leader).collect();
    let url = |id: u64, path: &str| format!("{}{path}", cluster.node(id).url());
    let made = until(200, "a new admin key", || {
        call_with(
            "POST",
            &url(followers[0], "/v1/api_keys"),
            ADMIN,
            false,
            Some(json!({"role": "admin"})),
        )
    });
    let replacement = made["key"].as_str().unwrap().to_owned();
    let list = until(200, "the keys", || {
        call_with("GET", &url(followers[1], "/v1/api_keys"), ADMIN, false, None)
    });
    let given = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] != made["id"])
        .expect("the admin key of the key file")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = until(200, "revoking the given key", || {
        call_with(
            "DELETE",
            &url(followers[1], &format!("/v1/api_keys/{given}")),
            &replacement,
            false,
            None,
        )
    });
    assert_eq!(revoked["status"], "revoked");

    for id in cluster.ids() {
        let balances = url(id, "/v1/platform/balances");
        let refused = until(401, "the revoked key on a follower read", || {
            call_with("GET", &balances, ADMIN, true, None)
        });
        assert_eq!(refused["error"]["code"], "api_key_revoked", "node {id}");
        let refused = call_with("GET", &balances, ADMIN, false, None).unwrap();
        assert_eq!(
            (refused.0, refused.1["error"]["code"].as_str()),
            (401, Some("api_key_revoked"))
        );
        until(200, "the new key", || call_with("GET", &balances, &replacement, true, None));
    }

    let restarted = followers[0];
    let balances = url(restarted, "/v1/platform/balances");
    cluster.restart(restarted);
    let started = Instant::now();
    let first = loop {
        match call_with("GET", &balances, ADMIN, true, None) {
            Ok(answer) => break answer,
            Err(e) => assert!(started.elapsed() < READY_WITHIN, "node {restarted}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        (first.0, first.1["error"]["code"].as_str()),
        (401, Some("api_key_revoked")),
        "{first:?}"
    );
}
