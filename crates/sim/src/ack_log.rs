//! The ack log of a day over HTTP (`huifu simulate --server`), and its check against a running
//! server (`huifu check-acks`).
//!
//! One line per operation the server acknowledged (a 2xx reply, or a `result` item of a batch),
//! tab-separated: `key  kind  id  amount  status  parent`. The key is the `Idempotency-Key` the
//! operation was sent with; `id` the object the reply named (`pay_…`, `ref_…`, `top_…`, `po_…`);
//! `amount` what it moved in minor units (0 when nothing); `status` the object's status in the
//! reply (`-` when none); `parent` the object it belongs to (a refund's payment, a top-up's user;
//! `-` when none).
//!
//! The log is written through a buffer and flushed regularly, not fsynced line by line: a line
//! lost in a crash of the simulator is a claim missing from the log (the check then proves less),
//! never a false claim, because a line is written only after its acknowledgement arrived.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::http_client::{id_number, Api, ApiError};

/// The ack log is flushed at least this often while lines arrive.
const ACK_FLUSH_INTERVAL_MS: u64 = 200;
/// Payments per page when listing a merchant's payments (the API's maximum).
const LIST_PAGE_MAX: usize = 1_000;
/// The wallet statements of at most this many users are read (spread evenly over them): each is
/// a few requests, so the check stays within seconds at a million payments.
const STATEMENT_USERS_MAX: usize = 5_000;
/// At most this many violations are kept; the count of the rest is reported.
const VIOLATIONS_MAX: usize = 100;
/// Transfer code of a top-up's pending transfer (`chart::Reason::TopUp`).
const CODE_TOP_UP: u64 = 1;
/// Transfer code of a withdrawal's pending transfer (`chart::Reason::Withdrawal`).
const CODE_WITHDRAWAL: u64 = 2;

/// One acknowledged operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckLine {
    pub key: String,
    pub kind: &'static str,
    pub id: String,
    pub amount: u64,
    pub status: String,
    pub parent: String,
}

/// The kinds of operation in an ack log.
pub const KINDS: &[&str] = &[
    "channel",
    "merchant",
    "rider",
    "user",
    "campaign",
    "coupon",
    "topup",
    "withdrawal",
    "topup_answer",
    "withdrawal_answer",
    "payment",
    "capture",
    "release",
    "refund",
    "payout",
    "payout_answer",
    "settlement_run",
];

/// Kinds whose reply names a new object: two keys must never name the same one.
const CREATING: &[&str] = &[
    "channel",
    "merchant",
    "rider",
    "user",
    "campaign",
    "coupon",
    "topup",
    "withdrawal",
    "payment",
    "refund",
    "payout",
    "settlement_run",
];

impl AckLine {
    fn to_line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            self.key, self.kind, self.id, self.amount, self.status, self.parent
        )
    }

    fn parse(line: &str) -> Option<AckLine> {
        let mut f = line.split('\t');
        let key = f.next()?.to_owned();
        let kind = f.next()?;
        let kind = *KINDS.iter().find(|k| **k == kind)?;
        let ack = AckLine {
            key,
            kind,
            id: f.next()?.to_owned(),
            amount: f.next()?.parse().ok()?,
            status: f.next()?.to_owned(),
            parent: f.next()?.to_owned(),
        };
        f.next().is_none().then_some(ack)
    }
}

/// The acknowledgements of a run: kept in memory for the closing check, and appended to a file
/// when one is given.
pub struct AckLog {
    file: Option<Mutex<(BufWriter<File>, Instant)>>,
    lines: Mutex<Vec<AckLine>>,
}

impl AckLog {
    pub fn open(path: Option<&Path>) -> anyhow::Result<AckLog> {
        let file = match path {
            Some(p) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("cannot open the ack log {}", p.display()))?;
                Some(Mutex::new((BufWriter::new(f), Instant::now())))
            }
            None => None,
        };
        Ok(AckLog { file, lines: Mutex::new(Vec::new()) })
    }

    /// Records acknowledgements (only ever after the reply arrived).
    pub fn record(&self, acks: Vec<AckLine>) -> std::io::Result<()> {
        if acks.is_empty() {
            return Ok(());
        }
        if let Some(file) = &self.file {
            let mut guard = file.lock().expect("lock");
            let (writer, flushed) = &mut *guard;
            for a in &acks {
                writer.write_all(a.to_line().as_bytes())?;
            }
            if flushed.elapsed() >= Duration::from_millis(ACK_FLUSH_INTERVAL_MS) {
                writer.flush()?;
                *flushed = Instant::now();
            }
        }
        self.lines.lock().expect("lock").extend(acks);
        Ok(())
    }

    pub fn flush(&self) -> std::io::Result<()> {
        match &self.file {
            Some(file) => file.lock().expect("lock").0.flush(),
            None => Ok(()),
        }
    }

    pub fn take_lines(&self) -> Vec<AckLine> {
        std::mem::take(&mut *self.lines.lock().expect("lock"))
    }
}

/// Reads an ack log; a torn last line (the simulator died while writing it) is skipped.
pub fn read(path: &Path) -> anyhow::Result<Vec<AckLine>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the ack log {}", path.display()))?;
    let mut acks = Vec::new();
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        match AckLine::parse(line) {
            Some(a) => acks.push(a),
            None if i + 1 == lines.len() && !complete => {}
            None => bail!("{}:{}: not an ack log line: {line}", path.display(), i + 1),
        }
    }
    Ok(acks)
}

/// What the check looked at and what it found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Distinct acknowledged operations checked.
    pub checked: u64,
    /// Payments found on the server.
    pub payments_on_server: u64,
    /// Acknowledged operations absent or different on the server.
    pub missing: u64,
    pub violations: Vec<String>,
    pub violations_dropped: u64,
}

impl Verdict {
    fn violation(&mut self, text: String) {
        if self.violations.len() < VIOLATIONS_MAX {
            self.violations.push(text);
        } else {
            self.violations_dropped += 1;
        }
    }

    fn lost(&mut self, text: String) {
        self.missing += 1;
        self.violation(text);
    }

    pub fn ok(&self) -> bool {
        self.violations.is_empty() && self.violations_dropped == 0
    }

    pub fn all_violations(&self) -> Vec<String> {
        let mut all = self.violations.clone();
        if self.violations_dropped > 0 {
            all.push(format!("and {} more violations", self.violations_dropped));
        }
        all
    }
}

/// A payment as the server lists it.
struct Listed {
    amount: u64,
    status: String,
    refunded: u64,
    refunds: BTreeSet<String>,
}

/// Runs `f` on every item with `threads` threads; results in the items' order.
pub fn parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<R, ApiError> + Sync,
) -> Result<Vec<R>, ApiError> {
    let chunk = items.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                let f = &f;
                scope.spawn(move || part.iter().map(f).collect::<Result<Vec<R>, ApiError>>())
            })
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for h in handles {
            out.extend(h.join().expect("check thread")?);
        }
        Ok(out)
    })
}

fn field_u64(v: &Value, name: &str) -> u64 {
    match &v[name] {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn field_str<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or("")
}

/// Every page of a list endpoint (`{data, has_more}`), following `starting_after` with the last
/// item's `id`.
fn all_pages(api: &Api, path: &str) -> Result<Vec<Value>, ApiError> {
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page_path = match &after {
            Some(a) => format!("{path}&starting_after={a}"),
            None => path.to_owned(),
        };
        let page = api.get(&page_path)?;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        after = data.last().map(|d| field_str(d, "id").to_owned());
        items.extend(data);
        if page["has_more"] != Value::Bool(true) || after.is_none() {
            return Ok(items);
        }
    }
}

/// Checks every acknowledged operation against the server: present, with the acknowledged
/// amount and status, and nothing applied twice.
pub fn verify(api: &Api, acks: &[AckLine], threads: usize) -> Result<Verdict, ApiError> {
    let mut v = Verdict::default();
    // One operation per key; a key logged twice (a run resumed on the same log) must agree.
    let mut by_key: HashMap<&str, &AckLine> = HashMap::new();
    for a in acks {
        match by_key.get(a.key.as_str()) {
            Some(first) if *first != a => v.violation(format!(
                "key {} acknowledged twice with different replies: {} and {}",
                a.key, first.id, a.id
            )),
            Some(_) => {}
            None => {
                by_key.insert(&a.key, a);
            }
        }
    }
    let unique: Vec<&AckLine> = {
        let mut u: Vec<&AckLine> = by_key.values().copied().collect();
        u.sort_by(|a, b| a.key.cmp(&b.key));
        u
    };
    v.checked = unique.len() as u64;
    let of = |kind: &'static str| unique.iter().copied().filter(move |a| a.kind == kind);
    // Two keys naming one new object: one operation acknowledged for two.
    let mut created: HashMap<(&str, &str), &str> = HashMap::new();
    for a in unique.iter().filter(|a| CREATING.contains(&a.kind)) {
        if let Some(other) = created.insert((a.kind, a.id.as_str()), a.key.as_str()) {
            v.violation(format!(
                "{} {} acknowledged under two keys: {other} and {}",
                a.kind, a.id, a.key
            ));
        }
    }

    // Payments: every merchant's list, so every payment on the server is seen once.
    let merchants: Vec<&str> = of("merchant").map(|a| a.id.as_str()).collect();
    let lists = parallel(&merchants, threads, |m| {
        all_pages(api, &format!("/v1/payments?merchant={m}&limit={LIST_PAGE_MAX}"))
    })?;
    let mut listed: HashMap<String, Listed> = HashMap::new();
    for p in lists.into_iter().flatten() {
        let refunds = p["refunds"]
            .as_array()
            .map(|r| r.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let id = field_str(&p, "id").to_owned();
        let entry = Listed {
            amount: field_u64(&p, "amount"),
            status: field_str(&p, "status").to_owned(),
            refunded: field_u64(&p, "amount_refunded"),
            refunds,
        };
        if listed.insert(id.clone(), entry).is_some() {
            v.violation(format!("payment {id} listed twice"));
        }
    }
    v.payments_on_server = listed.len() as u64;
    let acked_payments: HashMap<&str, &AckLine> =
        of("payment").map(|a| (a.id.as_str(), a)).collect();
    for id in listed.keys() {
        if !acked_payments.contains_key(id.as_str()) {
            v.violation(format!(
                "payment {id} is on the server but was never acknowledged (applied twice, or its \
                 reply was lost and never retried)"
            ));
        }
    }
    let resolved: HashMap<&str, &str> = of("capture")
        .map(|a| (a.id.as_str(), "succeeded"))
        .chain(of("release").map(|a| (a.id.as_str(), "released")))
        .collect();
    let mut refunds_of: HashMap<&str, (BTreeSet<String>, u64)> = HashMap::new();
    for r in of("refund") {
        let e = refunds_of.entry(r.parent.as_str()).or_default();
        e.0.insert(r.id.clone());
        e.1 += r.amount;
    }
    for (id, a) in &acked_payments {
        let Some(p) = listed.get(*id) else {
            v.lost(format!("acknowledged payment {id} (key {}) is not on the server", a.key));
            continue;
        };
        if p.amount != a.amount {
            v.lost(format!(
                "payment {id}: acknowledged amount {}, server has {}",
                a.amount, p.amount
            ));
        }
        let status_ok = match resolved.get(id) {
            Some(s) => p.status == *s,
            None if a.status == "authorized" => p.status == "authorized" || p.status == "expired",
            None => p.status == a.status,
        };
        if !status_ok {
            v.lost(format!(
                "payment {id}: acknowledged {} (resolved: {:?}), server says {}",
                a.status,
                resolved.get(id),
                p.status
            ));
        }
        let (refund_ids, refunded) = refunds_of.remove(*id).unwrap_or_default();
        if p.refunds != refund_ids || p.refunded != refunded {
            v.lost(format!(
                "payment {id}: acknowledged refunds {refund_ids:?} of {refunded}, server has {:?} of {}",
                p.refunds, p.refunded
            ));
        }
    }
    for (payment, (ids, _)) in refunds_of {
        v.lost(format!(
            "refunds {ids:?} acknowledged for payment {payment}, which is not on the server"
        ));
    }

    // Refunds, campaigns and settlement runs one by one.
    let refunds: Vec<&AckLine> = of("refund").collect();
    for (a, r) in refunds.iter().zip(parallel(&refunds, threads, |a| {
        api.call("GET", &format!("/v1/refunds/{}", a.id), None, None)
    })?) {
        if r.0 != 200
            || field_u64(&r.1, "amount") != a.amount
            || field_str(&r.1, "payment") != a.parent
        {
            v.lost(format!(
                "refund {}: acknowledged {} of {}, server says {} {}",
                a.id, a.amount, a.parent, r.0, r.1
            ));
        }
    }
    let campaigns: Vec<&AckLine> = of("campaign").collect();
    for (a, r) in campaigns.iter().zip(parallel(&campaigns, threads, |a| {
        api.call("GET", &format!("/v1/campaigns/{}", a.id), None, None)
    })?) {
        if r.0 != 200 || field_u64(&r.1, "budget") != a.amount {
            v.lost(format!(
                "campaign {}: acknowledged budget {}, server says {} {}",
                a.id, a.amount, r.0, r.1
            ));
        }
    }
    for a in of("settlement_run") {
        let (status, body) =
            api.call("GET", &format!("/v1/settlement_runs/{}", a.id), None, None)?;
        let paid: u64 = body["lines"]
            .as_array()
            .map(|ls| {
                ls.iter().filter(|l| l["payout"].is_string()).map(|l| field_u64(l, "net")).sum()
            })
            .unwrap_or(0);
        if status != 200 || paid != a.amount {
            v.lost(format!(
                "settlement run {}: acknowledged payouts of {}, server says {status} with {paid}",
                a.id, a.amount
            ));
        }
    }
    // Parties other than users exist (users are seen through their statements below).
    let parties: Vec<&AckLine> = unique
        .iter()
        .copied()
        .filter(|a| matches!(a.kind, "channel" | "merchant" | "rider"))
        .collect();
    for (a, r) in parties.iter().zip(parallel(&parties, threads, |a| {
        api.call("GET", &format!("/v1/balances/{}", a.id), None, None)
    })?) {
        if r.0 != 200 {
            v.lost(format!("{} {} (key {}) is not on the server: {}", a.kind, a.id, a.key, r.0));
        }
    }

    // Top-ups and withdrawals: each user's wallet statement holds exactly one pending transfer
    // per hold it acknowledged, of the acknowledged amount, and no other.
    let users: Vec<&str> = of("user").map(|a| a.id.as_str()).collect();
    let step = users.len().div_ceil(STATEMENT_USERS_MAX).max(1);
    let sampled: Vec<&str> = users.iter().copied().step_by(step).collect();
    let mut holds_of: HashMap<&str, Vec<(u64, u64, u64)>> = HashMap::new();
    for a in of("topup").chain(of("withdrawal")) {
        let code = if a.kind == "topup" { CODE_TOP_UP } else { CODE_WITHDRAWAL };
        let number = id_number(&a.id).unwrap_or(0);
        holds_of.entry(a.parent.as_str()).or_default().push((code, number, a.amount));
    }
    let statements = parallel(&sampled, threads, |u| {
        let path = format!("/v1/statements/{u}?limit={LIST_PAGE_MAX}");
        match api.call("GET", &path, None, None)? {
            (404, _) => Ok(None),
            _ => all_pages(api, &path).map(Some),
        }
    })?;
    for (user, entries) in sampled.iter().zip(statements) {
        let Some(entries) = entries else {
            v.lost(format!("acknowledged user {user} is not on the server"));
            continue;
        };
        let mut on_server: Vec<(u64, u64, u64)> = entries
            .iter()
            .filter(|e| {
                let code = field_u64(e, "code");
                (code == CODE_TOP_UP || code == CODE_WITHDRAWAL)
                    && e["flags"].as_array().is_some_and(|f| f.iter().any(|x| x == "pending"))
            })
            .map(|e| (field_u64(e, "code"), field_u64(e, "operation"), field_u64(e, "amount")))
            .collect();
        on_server.sort_unstable();
        let mut acked = holds_of.remove(user).unwrap_or_default();
        acked.sort_unstable();
        if on_server != acked {
            let extra: Vec<_> = on_server.iter().filter(|h| !acked.contains(h)).collect();
            let gone: Vec<_> = acked.iter().filter(|h| !on_server.contains(h)).collect();
            v.lost(format!(
                "user {user}: holds (code, id, amount) on the server but not acknowledged {extra:?}, \
                 acknowledged but not on the server {gone:?}"
            ));
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_back_as_written() {
        let a = AckLine {
            key: "s1-c0-7".to_owned(),
            kind: "refund",
            id: "ref_4503599627370600".to_owned(),
            amount: 1_234,
            status: "succeeded".to_owned(),
            parent: "pay_4503599627370500".to_owned(),
        };
        let line = a.to_line();
        assert_eq!(AckLine::parse(line.trim_end()), Some(a));
        assert_eq!(AckLine::parse("k\tpayment\tpay_1\tnot-a-number\t-\t-"), None);
        assert_eq!(AckLine::parse("k\tteleport\tpay_1\t1\t-\t-"), None);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_a_torn_middle_line_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acks.log");
        std::fs::write(&path, "k1\tpayment\tpay_1\t100\tsucceeded\t-\nk2\tpay").unwrap();
        let acks = read(&path).unwrap();
        assert_eq!(acks.len(), 1);
        assert_eq!(acks[0].id, "pay_1");
        std::fs::write(&path, "k1\tpay\nk2\tpayment\tpay_1\t100\tsucceeded\t-\n").unwrap();
        assert!(read(&path).is_err());
    }
}
