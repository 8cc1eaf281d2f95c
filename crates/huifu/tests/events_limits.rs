//! Event streams and the server's limits, on the real binary: streams start at now, resume
//! from `Last-Event-ID` or `starting_after` without gap or duplicate, are capped per key and
//! end on shutdown; requests in flight are capped (503 `overloaded`), a slow request head is cut
//! off and a slow body is answered 408.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Server, UNLIMITED};

const ADMIN: &str = "test-admin-key-0123456789";

fn start(dir: &std::path::Path, extra: &[&str]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_huifu"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(["--key-rate-per-second", UNLIMITED])
        .args(extra)
        .env("HUIFU_ADMIN_KEY", ADMIN)
        .stderr(Stdio::null());
    Server::spawn(command)
}

fn ok(s: &Server, path: &str, body: Value) -> Value {
    post(&s.base, path, body)
}

fn post(base: &str, path: &str, body: Value) -> Value {
    let response = ureq::post(&format!("{base}{path}"))
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .send_json(body)
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    response.into_json().unwrap()
}

fn pay(s: &Server, w: &(String, String, String)) {
    pay_at(&s.base, w)
}

fn pay_at(base: &str, (user, merchant, rider): &(String, String, String)) {
    post(
        base,
        "/v1/payments",
        json!({"user": user, "merchant": merchant, "rider": rider, "food_amount": 100, "delivery_fee": 10, "currency": "CNY"}),
    );
}

/// An open event stream, read line by line; a read that waits longer than its timeout ends a
/// `take`.
struct Stream {
    lines: std::io::Lines<BufReader<Box<dyn Read + Send + Sync>>>,
}

impl Stream {
    /// `GET /v1/events?{query}` with `headers`; the status and body when it is not a stream.
    fn open(
        s: &Server,
        query: &str,
        key: &str,
        headers: &[(&str, &str)],
    ) -> Result<Stream, (u16, Value, Option<String>)> {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout_read(Duration::from_millis(1_500))
            .build();
        let mut request = agent
            .get(&format!("{}/v1/events?{query}", s.base))
            .set("Authorization", &format!("Bearer {key}"));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        match request.call() {
            Ok(response) => {
                assert_eq!(response.content_type(), "text/event-stream");
                Ok(Stream { lines: BufReader::new(response.into_reader()).lines() })
            }
            Err(ureq::Error::Status(status, response)) => {
                let retry = response.header("Retry-After").map(str::to_owned);
                Err((status, response.into_json().unwrap(), retry))
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// The ids of the events that arrive until the stream is quiet for the read timeout (or
    /// `count` arrived), with each event's data checked.
    fn take(&mut self, count: usize, account: &str) -> Vec<u64> {
        let mut ids: Vec<u64> = Vec::new();
        while ids.len() < count {
            let Some(Ok(line)) = self.lines.next() else { break };
            if let Some(v) = line.strip_prefix("id: ") {
                ids.push(v.parse().unwrap());
            } else if let Some(data) = line.strip_prefix("data: ") {
                let data: Value = serde_json::from_str(data).unwrap();
                assert_eq!(data["account"], account);
                assert_eq!(data["entry"]["timestamp"], ids.last().unwrap().to_string());
            }
        }
        ids
    }

    /// Whether the server ended the stream (rather than the read timing out).
    fn ended(&mut self) -> bool {
        loop {
            match self.lines.next() {
                None => return true,
                Some(Err(e)) => {
                    return e.kind() != std::io::ErrorKind::TimedOut
                        && e.kind() != std::io::ErrorKind::WouldBlock
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

fn merchant_key(s: &Server, merchant: &str) -> String {
    ok(s, "/v1/api_keys", json!({"role": "merchant", "merchant": merchant}))["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn events_start_at_now_and_resume_from_an_id_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let w = s.paying_merchant(ADMIN);
    let merchant = w.1.clone();
    let key = merchant_key(&s, &merchant);
    // More entries than one page of catching up (`EVENTS_PAGE_MAX`, 1,000), one a payment.
    for _ in 0..1_100 {
        pay(&s, &w);
    }
    let before =
        Stream::open(&s, "starting_after=0", &key, &[]).unwrap().take(usize::MAX, &merchant);
    assert!(before.len() > 1_000, "{}", before.len());
    assert!(before.windows(2).all(|p| p[0] < p[1]));

    // From now: nothing of the history, then each new entry.
    let mut now = Stream::open(&s, "", &key, &[]).unwrap();
    for _ in 0..5 {
        pay(&s, &w);
    }
    let all =
        Stream::open(&s, "", &key, &[("Last-Event-ID", "0")]).unwrap().take(usize::MAX, &merchant);
    assert_eq!(all[..before.len()], before[..]);
    let new = &all[before.len()..];
    assert!(!new.is_empty());
    assert_eq!(now.take(new.len(), &merchant), new);

    // Resumed from an id in the middle of the history while payments go on: the pages of the
    // ledger, then the live entries, each once and in order.
    let from = before[50];
    let payer = std::thread::spawn({
        let base = s.base.clone();
        let w = w.clone();
        move || {
            for _ in 0..100 {
                pay_at(&base, &w);
            }
        }
    });
    let mut by_header =
        Stream::open(&s, "", &key, &[("Last-Event-ID", &from.to_string())]).unwrap();
    let mut by_query = Stream::open(&s, &format!("starting_after={from}"), &key, &[]).unwrap();
    // A browser's EventSource reconnects to the same URL with the header: the header wins.
    let mut both =
        Stream::open(&s, "starting_after=1", &key, &[("Last-Event-ID", &from.to_string())])
            .unwrap();
    payer.join().unwrap();
    let all =
        Stream::open(&s, "", &key, &[("Last-Event-ID", "0")]).unwrap().take(usize::MAX, &merchant);
    let expected: Vec<u64> = all.iter().copied().filter(|&t| t > from).collect();
    assert!(expected.len() > 1_000);
    for stream in [&mut by_header, &mut by_query, &mut both] {
        assert_eq!(stream.take(usize::MAX, &merchant), expected);
    }
    // And the live entries after that, on a stream that caught up.
    pay(&s, &w);
    let last =
        Stream::open(&s, "", &key, &[("Last-Event-ID", &expected.last().unwrap().to_string())])
            .unwrap()
            .take(usize::MAX, &merchant);
    assert!(!last.is_empty());
    assert_eq!(by_header.take(usize::MAX, &merchant), last);
}

#[test]
fn a_bad_last_event_id_is_400_and_streams_per_key_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--events-per-key-max", "2"]);
    let w = s.paying_merchant(ADMIN);
    let key = merchant_key(&s, &w.1);
    for (query, header, param) in [
        ("", Some("abc"), "Last-Event-ID"),
        ("", Some("-1"), "Last-Event-ID"),
        ("", Some("007"), "Last-Event-ID"),
        ("starting_after=x", None, "starting_after"),
    ] {
        let headers: Vec<(&str, &str)> = header.map(|h| ("Last-Event-ID", h)).into_iter().collect();
        let Err((status, v, _)) = Stream::open(&s, query, &key, &headers) else {
            panic!("{query} {header:?} was taken")
        };
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["error"]["param"], param, "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }

    let one = Stream::open(&s, "", &key, &[]).unwrap();
    let _two = Stream::open(&s, "", &key, &[]).unwrap();
    let Err((status, v, retry)) = Stream::open(&s, "", &key, &[]) else { panic!("a third stream") };
    assert_eq!((status, retry.as_deref()), (429, Some("1")), "{v}");
    assert_eq!(v["error"]["code"], "too_many_streams");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    // Another key has streams of its own.
    let other = merchant_key(&s, &w.1);
    let _three = Stream::open(&s, "", &other, &[]).unwrap();
    // A stream closed by its client gives its place back (once the server notices: at its
    // next write, which the next entry makes).
    drop(one);
    let started = Instant::now();
    loop {
        pay(&s, &w);
        match Stream::open(&s, "", &key, &[]) {
            Ok(_) => break,
            Err((429, _, _)) if started.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

#[test]
fn a_graceful_shutdown_with_open_streams_finishes_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path(), &[]);
    let w = s.paying_merchant(ADMIN);
    let key = merchant_key(&s, &w.1);
    let mut streams: Vec<Stream> =
        (0..3).map(|_| Stream::open(&s, "", &key, &[]).unwrap()).collect();
    streams.push(Stream::open(&s, "", &key, &[("Last-Event-ID", "0")]).unwrap());
    let started = Instant::now();
    let status = Command::new("kill").args(["-TERM", &s.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = s.child.try_wait().unwrap() {
            break exit;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    for stream in &mut streams {
        assert!(stream.ended());
    }
}

/// Reads what the server sends on `tcp` until it closes the connection or `within` passes.
fn read_all(tcp: &mut TcpStream, within: Duration) -> (String, bool) {
    tcp.set_read_timeout(Some(within)).unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed = loop {
        match tcp.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

#[test]
fn a_slow_request_head_is_cut_off_a_slow_body_is_408_and_requests_in_flight_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(
        dir.path(),
        &[
            "--header-read-timeout-ms",
            "500",
            "--body-read-timeout-ms",
            "1500",
            "--requests-in-flight-max",
            "1",
        ],
    );
    let addr = s.base.trim_start_matches("http://").to_owned();

    // A header line every 200 ms: the connection is closed about 500 ms after the first byte.
    let mut slow = TcpStream::connect(&addr).unwrap();
    let started = Instant::now();
    slow.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut cut = false;
    for i in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        if slow.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes()).is_err() {
            cut = true;
            break;
        }
        slow.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let mut byte = [0u8; 1];
        if matches!(slow.read(&mut byte), Ok(0)) {
            cut = true;
            break;
        }
    }
    assert!(cut, "a slow head was never cut off");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    // A body that never comes whole holds the one request in flight allowed...
    let mut held = TcpStream::connect(&addr).unwrap();
    held.write_all(
        format!(
            "POST /v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\
             Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{{\"currency\""
        )
        .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // ...so the next request is refused at once, in the error shape, with Retry-After.
    let (status, v) = s.request("GET", "/v1/platform/balances", Some(ADMIN), None, None);
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "overloaded");
    assert_eq!(v["error"]["type"], "api_error");
    let mut probe = TcpStream::connect(&addr).unwrap();
    probe
        .write_all(
            format!(
                "GET /v1/platform/balances HTTP/1.1\r\nHost: x\r\n\
                 Authorization: Bearer {ADMIN}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let (answer, _) = read_all(&mut probe, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1\r\n"), "{answer}");
    // The operations endpoints are outside the limit: an overloaded server says so.
    for path in ["/livez", "/healthz", "/metrics", "/openapi.json"] {
        assert_eq!(s.request("GET", path, None, None, None).0, 200, "{path}");
    }

    // The slow body gets 408 once its time is up, and the server takes requests again.
    let (answer, _) = read_all(&mut held, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    let (status, _) = s.request("GET", "/livez", None, None, None);
    assert_eq!(status, 200);
}
