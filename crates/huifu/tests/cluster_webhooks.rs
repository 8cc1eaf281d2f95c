//! Webhooks on a three-node cluster of the real `huifu serve`: only the leader delivers, and
//! it writes each endpoint's delivery position through the replicated log, so when the leader
//! is killed with SIGKILL the new one resumes where the old one stopped. A merchant's endpoint
//! with a receiver on loopback gets every payment made before and after the kill, each signed
//! with its secret, its sequence numbers without a gap (some delivered twice, as the same
//! event), and every surviving node reports the endpoint's position at the last event.
//!
//! The leader is killed while it delivers (the receiver answers slowly, so some events are
//! delivered and others not, and the position written lags); or while it waits to retry an
//! event the receiver failed, every node holding the position just before that event, events
//! after it delivered but not in order; or once every node holds the position at the last event
//! made. When every node held the position the old leader wrote last, nothing up to it may be
//! delivered again and everything after it delivered before the kill must be delivered again.
//!
//! The summary of each test (run with `--nocapture`) gives the timings, how much the receiver
//! had when the leader was killed, and the deliveries made twice.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/webhooks.rs"]
mod hooks;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::{agent, request, Cluster};
use hooks::{events_by_sequence, ranges, sequences, signed_by, Receiver};
use serde_json::{json, Value};

/// How long the cluster may take to elect a leader and have every node follow it.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long one write may take to be acknowledged, retries included (a failover among them).
const WRITE_WITHIN: Duration = Duration::from_secs(30);
/// Attempts one write is given at most.
const WRITE_ATTEMPTS_MAX: u32 = 500;
/// How long one attempt waits for its answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the receiver may wait for every event once the last payment is acknowledged.
const DELIVERED_WITHIN: Duration = Duration::from_secs(60);
/// How long the surviving nodes may take to report the endpoint's position at the last event.
const POSITION_WITHIN: Duration = Duration::from_secs(30);
/// Payments made before the leader is killed, and after.
const BEFORE_KILL: usize = 100;
const AFTER_KILL: usize = 50;
/// How long the receiver takes to answer each delivery: deliveries lag the payments a little,
/// so that a kill while the leader delivers finds some of them delivered and others not.
const RECEIVER_DELAY: Duration = Duration::from_millis(20);

/// The sequence number the receiver fails (500) until the leader is killed, when the kill is
/// `Kill::HeldByAFailure`.
const HELD: u64 = 11;

/// When the leader is killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kill {
    /// As soon as the receiver got a first delivery.
    WhileDelivering,
    /// Once the receiver failed sequence `HELD` and every node holds, in its own state, the
    /// position just before it; the old leader waits to retry it.
    HeldByAFailure,
    /// Once every node holds, in its own state, the position at the last event made.
    AtThePosition,
}

/// Sends `POST path` with `body` and `Idempotency-Key: key` to the nodes of `via` in turn,
/// again after a short pause on no answer, 429 or 5xx (no leader yet, the leader gone while a
/// request was forwarded), until one answers 200; panics on any other answer, or after
/// `WRITE_WITHIN` or `WRITE_ATTEMPTS_MAX` attempts. Returns the reply and the attempts made.
fn write(cluster: &Cluster, via: &[u64], path: &str, body: &Value, key: &str) -> (Value, u32) {
    let agent = agent(CALL_TIMEOUT);
    let body = body.to_string();
    let started = Instant::now();
    let mut last = String::new();
    for attempt in 1..=WRITE_ATTEMPTS_MAX {
        let node = via[(attempt as usize - 1) % via.len()];
        let url = format!("{}{path}", cluster.node(node).url());
        match request(&agent, "POST", &url, Some(&body), &[("Idempotency-Key", key)]) {
            Ok((200, reply)) => return (reply, attempt),
            Ok((status, reply)) if status == 429 || status >= 500 => {
                last = format!("node {node}: {status} {reply}");
            }
            Ok((status, reply)) => panic!("POST {path} ({key}) via node {node}: {status} {reply}"),
            Err(e) => last = format!("node {node}: {e}"),
        }
        assert!(
            started.elapsed() < WRITE_WITHIN,
            "POST {path} ({key}) not acknowledged within {WRITE_WITHIN:?}: {last}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("POST {path} ({key}) not acknowledged in {WRITE_ATTEMPTS_MAX} attempts: {last}");
}

/// `GET path` on node `id` (from its own state when `own`), or why it got no 200.
fn read(cluster: &Cluster, id: u64, path: &str, own: bool) -> Result<Value, String> {
    let url = format!("{}{path}", cluster.node(id).url());
    let headers: &[(&str, &str)] =
        if own { &[("Huifu-Read-Consistency", "follower")] } else { &[] };
    match request(&agent(CALL_TIMEOUT), "GET", &url, None, headers)? {
        (200, v) => Ok(v),
        (status, v) => Err(format!("{status} {v}")),
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_owned()
}

/// The parties of the payments: (user, merchant, rider), made through the nodes of `via`.
fn world(cluster: &Cluster, via: &[u64]) -> (String, String, String) {
    let cny = json!({"currency": "CNY"});
    let channel = id_of(&write(cluster, via, "/v1/channels", &cny, "world-channel").0);
    let user = id_of(&write(cluster, via, "/v1/users", &cny, "world-user").0);
    let merchant = id_of(
        &write(
            cluster,
            via,
            "/v1/merchants",
            &json!({"currency": "CNY", "commission_bps": 1000, "channel": channel}),
            "world-merchant",
        )
        .0,
    );
    let rider = id_of(&write(cluster, via, "/v1/riders", &cny, "world-rider").0);
    let topup = write(
        cluster,
        via,
        "/v1/topups",
        &json!({"user": user, "channel": channel, "amount": 100_000_000}),
        "world-topup",
    )
    .0;
    let confirmed = write(
        cluster,
        via,
        &format!("/v1/topups/{}/confirm", id_of(&topup)),
        &json!({}),
        "world-topup-confirm",
    )
    .0;
    assert_eq!(confirmed["status"], "succeeded", "{confirmed}");
    (user, merchant, rider)
}

/// Payment `n` through the nodes of `via`, retried with its own key until acknowledged; its id
/// and the attempts it took.
fn pay(
    cluster: &Cluster,
    via: &[u64],
    parties: &(String, String, String),
    n: usize,
) -> (String, u32) {
    let (user, merchant, rider) = parties;
    let body = json!({"user": user, "merchant": merchant, "rider": rider, "food_amount": 100,
        "delivery_fee": 10, "currency": "CNY"});
    let (reply, attempts) = write(cluster, via, "/v1/payments", &body, &format!("payment-{n}"));
    assert_eq!(reply["status"], "succeeded", "payment {n}: {reply}");
    (id_of(&reply), attempts)
}

/// Waits (at most `POSITION_WITHIN` for all) until each node of `nodes` shows the endpoint at
/// `path` delivered up to `sequence`: in its own state, and as the leader reads it when
/// `leader_too`. Returns how long it took.
fn wait_position(
    cluster: &Cluster,
    nodes: &[u64],
    path: &str,
    sequence: u64,
    leader_too: bool,
) -> Duration {
    let started = Instant::now();
    let ways: &[bool] = if leader_too { &[true, false] } else { &[true] };
    for &id in nodes {
        for &own in ways {
            loop {
                let shown = read(cluster, id, path, own);
                let at = shown.as_ref().ok().and_then(|v| v["delivered_sequence"].as_u64());
                if at == Some(sequence) {
                    let v = shown.unwrap();
                    assert_eq!(v["status"], "enabled", "{v}");
                    assert!(v.get("secret").is_none(), "{v}");
                    break;
                }
                assert!(
                    started.elapsed() < POSITION_WITHIN,
                    "node {id} (own state: {own}) shows the endpoint at {at:?}, not {sequence}: \
                     {shown:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    started.elapsed()
}

/// Node `id`'s successful webhook deliveries, from its `/metrics` (none when it does not answer).
fn deliveries_made(cluster: &Cluster, id: u64) -> Option<u64> {
    let url = format!("{}/metrics", cluster.node(id).url());
    let text = agent(CALL_TIMEOUT).get(&url).call().ok()?.into_string().ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("huifu_webhook_deliveries_total{result=\"succeeded\"} "))
        .and_then(|n| n.trim().parse().ok())
}

/// Makes payments before and after a kill of the leader (`kill` says when) and checks what
/// the endpoint's receiver got and what the surviving nodes hold.
fn failover(kill: Kill) {
    let started = Instant::now();
    let mut cluster = Cluster::start_with(3, 0, &["--webhooks-allow-private"]);
    let leader = cluster.wait_ready(READY_WITHIN);
    let up_after = started.elapsed();
    let followers: Vec<u64> = cluster.ids().into_iter().filter(|&id| id != leader).collect();
    // Everything before the kill goes through a follower, which forwards it to the leader.
    let parties = world(&cluster, &followers);

    let open = Arc::new(AtomicBool::new(kill != Kill::HeldByAFailure));
    let receiver = Receiver::start({
        let open = open.clone();
        move |d, _| {
            if d.json["sequence"] == HELD && !open.load(Ordering::SeqCst) {
                return (500, vec![]);
            }
            std::thread::sleep(RECEIVER_DELAY);
            (200, vec![])
        }
    });
    let (endpoint, _) = write(
        &cluster,
        &followers,
        "/v1/webhook_endpoints",
        &json!({"url": receiver.url, "enabled_events": ["payment.succeeded"],
                "merchant": parties.1, "description": "failover"}),
        "endpoint",
    );
    let endpoint_id = id_of(&endpoint);
    let path = format!("/v1/webhook_endpoints/{endpoint_id}");
    let secret = endpoint["secret"].as_str().expect("the endpoint's secret").to_owned();
    assert!(secret.starts_with("whsec_"), "{endpoint}");
    assert_eq!(
        (endpoint["merchant"].as_str(), endpoint["status"].as_str()),
        (Some(&*parties.1), Some("enabled"))
    );

    let mut payments: Vec<String> = Vec::new();
    for n in 0..BEFORE_KILL {
        payments.push(pay(&cluster, &followers, &parties, n).0);
    }
    // The position every node holds when the leader is killed, when it is the last the
    // leader wrote.
    let last_written = match kill {
        // The leader has begun delivering; it is killed while it still has events to deliver
        // (the receiver answers slowly) or positions to write.
        Kill::WhileDelivering => {
            receiver.wait(Duration::from_secs(20), |got| !got.is_empty());
            None
        }
        // The position cannot pass the failed event until its retry, 5 s later.
        Kill::HeldByAFailure => {
            receiver.wait(Duration::from_secs(20), |got| {
                got.iter().any(|d| d.json["sequence"] == HELD)
            });
            wait_position(&cluster, &cluster.ids(), &path, HELD - 1, false);
            Some(HELD - 1)
        }
        Kill::AtThePosition => {
            let before = BEFORE_KILL as u64;
            wait_position(&cluster, &cluster.ids(), &path, before, false);
            Some(before)
        }
    };
    let leader = cluster.leader(READY_WITHIN);
    let survivors: Vec<u64> = cluster.ids().into_iter().filter(|&id| id != leader).collect();
    // The position each node holds now, in its own state. The lowest is a floor of what any
    // new leader starts from: positions only move forward. Whatever the receiver gets from
    // here on is after it (the old leader has it acknowledged, and sends only what follows).
    let held: Vec<(u64, u64)> = cluster
        .ids()
        .into_iter()
        .map(|id| {
            let shown = read(&cluster, id, &path, true);
            let at = shown.as_ref().ok().and_then(|v| v["delivered_sequence"].as_u64());
            (id, at.unwrap_or_else(|| panic!("node {id}'s position: {shown:?}")))
        })
        .collect();
    let floor = held.iter().map(|&(_, at)| at).min().unwrap();
    if let Some(position) = last_written {
        assert_eq!(floor, position, "{held:?}");
    }
    let at_kill = receiver.deliveries();
    let killed_at = Instant::now();
    cluster.kill(leader);
    open.store(true, Ordering::SeqCst);

    // The payments after the kill go through the survivors, retried while they elect.
    let mut first_ack_after_kill = None;
    let mut retried_after_kill = 0;
    for n in BEFORE_KILL..BEFORE_KILL + AFTER_KILL {
        let via = [survivors[n % 2], survivors[(n + 1) % 2]];
        let (id, attempts) = pay(&cluster, &via, &parties, n);
        first_ack_after_kill.get_or_insert_with(|| killed_at.elapsed());
        if attempts > 1 {
            retried_after_kill += 1;
        }
        payments.push(id);
    }
    let paid_at = Instant::now();
    let new_leader = cluster.leader(READY_WITHIN);
    assert_ne!(new_leader, leader, "the killed node is said to lead");

    // Every sequence number from 1 to the last, however many times each came.
    let total = (BEFORE_KILL + AFTER_KILL) as u64;
    let got = receiver.wait(DELIVERED_WITHIN, |got| sequences(got).len() as u64 >= total);
    let delivered_after = paid_at.elapsed();
    assert_eq!(
        sequences(&got),
        (1..=total).collect::<Vec<u64>>(),
        "sequences delivered: {}",
        ranges(&sequences(&got))
    );
    for d in &got {
        assert!(signed_by(d, &secret), "a bad signature: {:?}", d.headers);
        assert_eq!(d.headers.get("webhook-id"), d.json["id"].as_str().map(str::to_owned).as_ref());
        assert_eq!(d.json["endpoint"], endpoint_id.as_str(), "{}", d.json);
        assert_eq!(d.json["type"], "payment.succeeded", "{}", d.json);
        assert_eq!(d.json["data"]["object"]["merchant"], parties.1.as_str(), "{}", d.json);
    }
    // A sequence number that came twice came with the same event, and an event with one
    // sequence number.
    let by_sequence = events_by_sequence(&got);
    let events: BTreeSet<&String> = by_sequence.values().collect();
    assert_eq!(events.len(), by_sequence.len(), "an event delivered under two sequence numbers");
    // The payments were made one after the other, each acknowledged before the next was sent:
    // sequence k is the k-th payment's event.
    let paid_by_sequence: BTreeMap<u64, String> = got
        .iter()
        .map(|d| {
            let sequence = d.json["sequence"].as_u64().unwrap();
            (sequence, d.json["data"]["object"]["id"].as_str().unwrap().to_owned())
        })
        .collect();
    let expected: BTreeMap<u64, String> =
        payments.iter().enumerate().map(|(i, id)| (i as u64 + 1, id.clone())).collect();
    assert_eq!(paid_by_sequence, expected, "the payments delivered are not the ones made");
    // Nothing up to the position every node held is delivered after the kill.
    let before_kill = sequences(&at_kill);
    let up_to_floor: Vec<u64> = before_kill.iter().copied().take_while(|&s| s <= floor).collect();
    assert_eq!(up_to_floor, (1..=floor).collect::<Vec<u64>>(), "before the kill");
    let after_kill = sequences(&got[at_kill.len()..]);
    let again: Vec<u64> = after_kill.iter().copied().filter(|&s| s <= floor).collect();
    assert!(again.is_empty(), "delivered again up to the position {floor}: {again:?}");
    if let Some(position) = last_written {
        // It was the position the old leader wrote last: the new one delivers again everything
        // after it that the old one delivered.
        let lost: Vec<u64> = before_kill
            .iter()
            .copied()
            .filter(|&s| s > position && after_kill.binary_search(&s).is_err())
            .collect();
        assert!(lost.is_empty(), "not delivered again after the position {position}: {lost:?}");
    }

    // Every surviving node holds the endpoint's position at the last event, in its own state
    // (so it was replicated) and as the leader reads it.
    let positions_after = wait_position(&cluster, &survivors, &path, total, true);

    // The leader's attempts (kept in its memory): each one succeeded, and while the node that
    // took over still leads, they are there.
    let attempts = read(&cluster, survivors[0], &format!("{path}/attempts"), false).unwrap();
    let attempts = attempts["data"].as_array().cloned().unwrap_or_default();
    if cluster.leader(READY_WITHIN) == new_leader {
        assert!(!attempts.is_empty(), "no attempts on the new leader, node {new_leader}");
    }
    for a in &attempts {
        assert_eq!(
            (a["status"].as_str(), a["response_status"].as_u64()),
            (Some("succeeded"), Some(200)),
            "{a}"
        );
    }

    let delivered_by: Vec<String> = survivors
        .iter()
        .map(|&id| {
            let made = deliveries_made(&cluster, id).map_or("-".into(), |n| n.to_string());
            format!("node {id}: {made}")
        })
        .collect();
    let twice = got.len() - by_sequence.len();
    eprintln!(
        "--- {kill:?}: cluster up in {:.1} s, leader {leader}; {BEFORE_KILL} payments before \
         the kill, the receiver had sequences {} when the leader was killed, the nodes held \
         positions {}; {AFTER_KILL} payments after it, the first acknowledged {:.2} s after \
         the kill, {retried_after_kill} needed more than one attempt; node {new_leader} leads; \
         every sequence 1-{total} delivered {:.2} s after the last payment; {} deliveries, \
         {twice} of them again; the survivors showed delivered_sequence {total} within {:.2} s; \
         deliveries made (/metrics): {}; total {:.1} s",
        up_after.as_secs_f64(),
        ranges(&sequences(&at_kill)),
        held.iter().map(|(id, at)| format!("node {id}: {at}")).collect::<Vec<_>>().join(", "),
        first_ack_after_kill.unwrap_or_default().as_secs_f64(),
        delivered_after.as_secs_f64(),
        got.len(),
        positions_after.as_secs_f64(),
        delivered_by.join(", "),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_new_leader_delivers_every_event_after_the_leader_is_killed_while_delivering() {
    failover(Kill::WhileDelivering);
}

#[test]
fn a_new_leader_resumes_after_the_position_held_by_a_failed_event() {
    failover(Kill::HeldByAFailure);
}

#[test]
fn a_new_leader_resumes_after_the_replicated_position() {
    failover(Kill::AtThePosition);
}
