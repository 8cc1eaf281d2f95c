//! `huifu bench events`: event streams under payment load. Many streams follow accounts of a
//! running server (`GET /v1/events`) while `http` sends payments; each event's delivery latency
//! is measured from its ledger timestamp (when the engine applied the payment, just before the
//! reply that acknowledged it: at most a group commit earlier) to its arrival on the stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Delivery latencies above this are counted at it (a minute, in microseconds).
const LATENCY_US_MAX: u64 = 60_000_000;

/// Open streams and what they received.
pub struct Streams {
    runtime: tokio::runtime::Runtime,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Histogram<u64>>>>,
    stop: watch::Sender<bool>,
    events: Arc<AtomicU64>,
}

/// What the streams received.
pub struct Received {
    /// Delivery latency of each event, in microseconds.
    pub latencies_us: Histogram<u64>,
    pub streams: usize,
}

impl Streams {
    /// Opens `count` streams on each `(account, count)` of `follows` at `url` (`http://host:port`),
    /// the keys taken in turn, `per_key` streams each at most. Every stream starts at now.
    pub fn open(
        url: &str,
        keys: &[String],
        per_key: usize,
        follows: &[(String, usize)],
        threads: usize,
    ) -> anyhow::Result<Streams> {
        let address = url.strip_prefix("http://").context("the URL is not http://")?.to_owned();
        let total: usize = follows.iter().map(|(_, n)| n).sum();
        if keys.len().saturating_mul(per_key) < total {
            bail!("{} keys of {per_key} streams cannot open {total}", keys.len());
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let (stop, stopped) = watch::channel(false);
        let events = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::with_capacity(total);
        let mut n = 0;
        for (account, count) in follows {
            for _ in 0..*count {
                let key = &keys[n / per_key];
                n += 1;
                let request = format!(
                    "GET /v1/events?account={account} HTTP/1.1\r\nHost: {address}\r\n\
                     Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n"
                );
                let stream = runtime.block_on(open_stream(&address, &request))?;
                let (stopped, events) = (stopped.clone(), events.clone());
                tasks.push(runtime.spawn(follow(stream, stopped, events)));
            }
        }
        Ok(Streams { runtime, tasks, stop, events })
    }

    /// Events received so far, on all streams.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Closes the streams; what they received.
    pub fn stop(self) -> anyhow::Result<Received> {
        let _ = self.stop.send(true);
        let streams = self.tasks.len();
        let mut latencies_us = Histogram::new_with_max(LATENCY_US_MAX, 3)?;
        self.runtime.block_on(async {
            for task in self.tasks {
                latencies_us.add(task.await.context("a stream's task panicked")??)?;
            }
            anyhow::Ok(())
        })?;
        Ok(Received { latencies_us, streams })
    }
}

/// Sends `request` and reads the response's head: the stream, past it.
async fn open_stream(address: &str, request: &str) -> anyhow::Result<BufReader<TcpStream>> {
    let tcp = TcpStream::connect(address).await.context("cannot connect")?;
    tcp.set_nodelay(true)?;
    let mut stream = BufReader::new(tcp);
    stream.get_mut().write_all(request.as_bytes()).await?;
    let mut status = String::new();
    stream.read_line(&mut status).await?;
    if !status.starts_with("HTTP/1.1 200") {
        let mut rest = String::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(1), stream.read_to_string(&mut rest)).await;
        bail!("GET /v1/events: {} {rest}", status.trim());
    }
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            bail!("the stream ended in its head");
        }
        if line == "\r\n" {
            return Ok(stream);
        }
    }
}

/// Reads events until told to stop; each `id:` line (a ledger timestamp in nanoseconds since
/// the epoch) gives a latency. Chunk-size lines of the chunked encoding never start with `id:`.
/// The bytes are scanned as they come, a read at a time, without making a string of each line:
/// the readers of 1,100 streams share the machine with the server they measure, so what they
/// spend is taken from it.
async fn follow(
    mut stream: BufReader<TcpStream>,
    mut stopped: watch::Receiver<bool>,
    events: Arc<AtomicU64>,
) -> anyhow::Result<Histogram<u64>> {
    let mut latencies_us = Histogram::new_with_max(LATENCY_US_MAX, 3)?;
    // Bytes read and not yet scanned: at most the start of a line that has not ended.
    let mut pending: Vec<u8> = Vec::with_capacity(64 << 10);
    loop {
        tokio::select! {
            read = stream.read_buf(&mut pending) => {
                if read? == 0 {
                    bail!("the server ended a stream");
                }
            }
            _ = stopped.changed() => return Ok(latencies_us),
        }
        let now_ns = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = &pending[start..start + end];
            start += end + 1;
            let Some(id) = line.strip_prefix(b"id: ") else { continue };
            let id = std::str::from_utf8(id).context("an event id")?;
            let stamp_ns: u64 = id.trim_end().parse().context("an event id")?;
            let latency_us = now_ns.saturating_sub(u128::from(stamp_ns)) / 1_000;
            latencies_us.saturating_record(u64::try_from(latency_us).unwrap_or(u64::MAX));
            events.fetch_add(1, Ordering::Relaxed);
        }
        pending.drain(..start);
    }
}

/// Makes `count` platform keys with the admin `key` (streams are capped per key).
pub fn platform_keys(url: &str, admin_key: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let address = url.strip_prefix("http://").context("the URL is not http://")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut keys = Vec::with_capacity(count);
        for _ in 0..count {
            let body = r#"{"role":"platform"}"#;
            let request = format!(
                "POST /v1/api_keys HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {admin_key}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let mut tcp = TcpStream::connect(address).await?;
            tcp.write_all(request.as_bytes()).await?;
            let mut answer = String::new();
            tcp.read_to_string(&mut answer).await?;
            let json = answer.split("\r\n\r\n").nth(1).context("no body")?;
            let value: serde_json::Value =
                serde_json::from_str(json).with_context(|| format!("POST /v1/api_keys: {answer}"))?;
            keys.push(value["key"].as_str().context("no key in the answer")?.to_owned());
        }
        anyhow::Ok(keys)
    })
}
