//! What the webhook tests share: a receiver on loopback that keeps every delivery it gets, and
//! the checks of what it got (signatures by Standard Webhooks, sequence numbers, event ids).

// Each test file that uses this module uses a different part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// The largest request body the receiver reads (deliveries are far smaller).
const BODY_BYTES_MAX: usize = 1 << 20;

/// One delivery as a receiver got it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub json: Value,
}

/// A receiver on loopback: answers each delivery with what `answer` says (status, extra
/// headers), and keeps every delivery it got.
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
}

type Answer = dyn Fn(&Delivery, usize) -> (u16, Vec<(String, String)>) + Send + Sync;

impl Receiver {
    pub fn start(
        answer: impl Fn(&Delivery, usize) -> (u16, Vec<(String, String)>) + Send + Sync + 'static,
    ) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let answer: Arc<Answer> = Arc::new(answer);
        let shared = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (got, answer) = (shared.clone(), answer.clone());
                std::thread::spawn(move || serve(stream, &got, &*answer));
            }
        });
        Receiver { url, got }
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits (at most `within`) until `done` holds for what was delivered.
    pub fn wait(&self, within: Duration, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        let started = Instant::now();
        loop {
            let got = self.deliveries();
            if done(&got) {
                return got;
            }
            assert!(
                started.elapsed() < within,
                "not delivered in {within:?}: {} deliveries so far, sequences {}",
                got.len(),
                ranges(&sequences(&got))
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Serves HTTP/1.1 requests on one kept-alive connection, until it closes or a request is not
/// understood (a sender killed in the middle of one).
fn serve(stream: TcpStream, got: &Mutex<Vec<Delivery>>, answer: &Answer) {
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let Some((name, value)) = h.split_once(':') else { return };
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
        let length = match headers.get("content-length").map(|v| v.parse::<usize>()) {
            None => 0,
            Some(Ok(n)) if n <= BODY_BYTES_MAX => n,
            Some(_) => return,
        };
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let delivery = Delivery { headers, body, json };
        let n = {
            let mut got = got.lock().unwrap_or_else(|e| e.into_inner());
            got.push(delivery.clone());
            got.len()
        };
        let (status, extra) = answer(&delivery, n);
        let mut response = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n");
        for (name, value) in extra {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\nok");
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// Whether `d` carries a valid signature by `secret` (`whsec_...`), per Standard Webhooks.
pub fn signed_by(d: &Delivery, secret: &str) -> bool {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    let (Some(id), Some(ts), Some(signatures)) = (
        d.headers.get("webhook-id"),
        d.headers.get("webhook-timestamp"),
        d.headers.get("webhook-signature"),
    ) else {
        return false;
    };
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&d.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    signatures.split(' ').any(|s| s == expected)
}

/// The sequence numbers delivered, each once, in order.
pub fn sequences(got: &[Delivery]) -> Vec<u64> {
    let mut s: Vec<u64> = got.iter().filter_map(|d| d.json["sequence"].as_u64()).collect();
    s.sort_unstable();
    s.dedup();
    s
}

/// The event id delivered with each sequence number; panics when a sequence number came twice
/// with different events (a delivery again must be the same event).
pub fn events_by_sequence(got: &[Delivery]) -> BTreeMap<u64, String> {
    let mut by_sequence: BTreeMap<u64, String> = BTreeMap::new();
    for d in got {
        let Some(sequence) = d.json["sequence"].as_u64() else { continue };
        let event = d.json["id"].as_str().expect("an event id").to_owned();
        let first = by_sequence.entry(sequence).or_insert_with(|| event.clone());
        assert_eq!(*first, event, "sequence {sequence} delivered with two events");
    }
    by_sequence
}

/// Sorted numbers in short: `1-17, 19, 21-30`.
pub fn ranges(sorted: &[u64]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}
