//! What the HTTP integration tests share: the real `huifu serve` on a free port, and a request
//! that returns the status and the JSON body.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub struct Server {
    pub child: Child,
    pub base: String,
}

/// `--key-rate-per-second` for a server that tests drive hard with one key: the highest rate.
pub const UNLIMITED: &str = "10000000";

impl Server {
    /// Starts `huifu serve` on a free port of 127.0.0.1 with `admin_key`, data in `dir`. Its
    /// keys are not held to their roles' rate limits: tests drive it hard with one key.
    pub fn start(dir: &Path, admin_key: &str) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_huifu"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(["--key-rate-per-second", UNLIMITED])
            .env("HUIFU_ADMIN_KEY", admin_key)
            .stderr(Stdio::null());
        Server::spawn(command)
    }

    /// Runs `command`, a `huifu serve` (or what execs one), until it prints its address.
    pub fn spawn(mut command: Command) -> Server {
        let mut child = command.stdout(Stdio::piped()).spawn().expect("start huifu serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines.next().expect("server printed its address").unwrap();
            if let Some(url) = line.strip_prefix("huifu listening on ") {
                break url.trim().to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, base }
    }

    /// A merchant with a user who can pay it (100,000,000 topped up), made with `admin`:
    /// (user, merchant, rider).
    pub fn paying_merchant(&self, admin: &str) -> (String, String, String) {
        let post = |path: &str, body: Value| {
            let text = body.to_string();
            let (status, v) =
                self.request("POST", path, Some(admin), None, Some(("application/json", &text)));
            assert_eq!(status, 200, "POST {path}: {v}");
            v["id"].as_str().expect("an id").to_owned()
        };
        let channel = post("/v1/channels", json!({"currency": "CNY"}));
        let user = post("/v1/users", json!({"currency": "CNY"}));
        let merchant = post(
            "/v1/merchants",
            json!({"currency": "CNY", "commission_bps": 1000, "channel": channel}),
        );
        let rider = post("/v1/riders", json!({"currency": "CNY"}));
        let topup =
            post("/v1/topups", json!({"user": user, "channel": channel, "amount": 100_000_000}));
        post(&format!("/v1/topups/{topup}/confirm"), json!({}));
        (user, merchant, rider)
    }

    /// SIGKILL, then wait for the process to be gone.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// A request with an optional key, idempotency key and body (content type, text); returns
    /// the status and the JSON body (or the text in "text").
    pub fn request(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        idem: Option<&str>,
        body: Option<(&str, &str)>,
    ) -> (u16, Value) {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
        let mut req = agent.request(method, &format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.set("Authorization", &format!("Bearer {k}"));
        }
        if let Some(i) = idem {
            req = req.set("Idempotency-Key", i);
        }
        let result = match body {
            Some((content_type, text)) => req.set("Content-Type", content_type).send_string(text),
            None => req.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = response.status();
        let text = response.into_string().unwrap();
        let value = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "text": text }));
        (status, value)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
