//! Exports of a data folder written by the real engine, read back with the Parquet crate's Arrow
//! reader and the `csv` crate, and compared row by row with the recovered machine.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Int64Type, TimestampMicrosecondType};
use arrow_array::Array;
use huifu_engine::{Clock, Engine, EngineOptions};
use huifu_export::{
    export, parse_time, payout_id, prefixed, Cell, ColumnType, ExportError, ExportOptions, Format,
    Table, TimeRange,
};
use huifu_ledger::{Account, PendingStatus, Transfer};
use huifu_payments::{
    CouponRule, Done, Funder, Hold, Op, Payment, PaymentStatus, PaymentsMachine, Payout,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const CNY: u32 = 156;
const USD: u32 = 840;
const HOUR_NS: u64 = 3_600_000_000_000;

/// A clock the test moves by hand.
#[derive(Clone)]
struct TestClock(Arc<AtomicU64>);

impl Clock for TestClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The start of each phase of the workload, and its end.
struct Phases {
    starts: [u64; 3],
    end: u64,
}

fn engine(dir: &Path, clock: &TestClock) -> Engine<PaymentsMachine> {
    Engine::open_with_clock(EngineOptions::new(dir), clock.clone()).expect("engine").0
}

fn run(engine: &Engine<PaymentsMachine>, op: Op) -> Done {
    let outcome = engine.execute(op.clone()).expect("engine running");
    outcome.unwrap_or_else(|e| panic!("{op:?}: {e:?}"))
}

fn pay(id: u64, user: u64, merchant: u64, rider: u64, food: u64, coupon: u64, channel: u64) -> Op {
    Op::Pay { id, user, merchant, rider, food, delivery: 500, coupon, channel, timeout_s: 0 }
}

fn with_timeout(mut op: Op, timeout: u32) -> Op {
    if let Op::Pay { timeout_s, .. } = &mut op {
        *timeout_s = timeout;
    }
    op
}

/// A small day in three phases an hour apart: parties and money in, then payments, refunds and
/// payouts of every kind, then more of them after a checkpoint. Ids of phase `p` are in
/// `p * 1000 ..`. Returns the phases; the engine is stopped.
fn workload(dir: &Path) -> Phases {
    let t0 = parse_time("2026-01-31T00:00:00Z").unwrap();
    let starts = [t0, t0 + HOUR_NS, t0 + 2 * HOUR_NS];
    let clock = TestClock(Arc::new(AtomicU64::new(starts[0])));
    let e = engine(dir, &clock);
    // Phase 0: parties, a campaign, top-ups (one refused by its bank, one never answered).
    for op in [
        Op::CreateChannel { id: 1, currency: CNY },
        Op::CreateChannel { id: 2, currency: USD },
        Op::CreateMerchant { id: 20, currency: CNY, commission_bps: 1_000, channel: 1 },
        Op::CreateMerchant { id: 21, currency: CNY, commission_bps: 550, channel: 1 },
        Op::CreateMerchant { id: 22, currency: USD, commission_bps: 800, channel: 2 },
        Op::CreateRider { id: 30, currency: CNY },
        Op::CreateRider { id: 31, currency: USD },
        Op::CreateCampaign {
            id: 60,
            currency: CNY,
            funder: Funder::Platform,
            budget: 10_000,
            rule: CouponRule {
                amount_off: 300,
                min_order: 1_000,
                valid_from: 0,
                valid_until: 0,
                per_user_limit: 0,
            },
        },
    ] {
        run(&e, op);
    }
    for user in 10..=15 {
        let (currency, channel) = if user == 15 { (USD, 2) } else { (CNY, 1) };
        run(&e, Op::CreateUser { id: user, currency });
        run(&e, Op::TopUp { id: 100 + user, user, channel, amount: 100_000, timeout_s: 0 });
        run(&e, Op::BankResult { id: 100 + user, ok: true });
    }
    run(&e, Op::GrantCoupon { id: 70, campaign: 60, user: 10 });
    run(&e, Op::GrantCoupon { id: 71, campaign: 60, user: 11 });
    run(&e, Op::TopUp { id: 130, user: 12, channel: 1, amount: 7_000, timeout_s: 0 });
    run(&e, Op::BankResult { id: 130, ok: false });
    run(&e, Op::TopUp { id: 131, user: 13, channel: 1, amount: 9_000, timeout_s: 604_800 });
    // A bank-channel payment whose hold times out before the next phase.
    run(&e, with_timeout(pay(140, 14, 20, 30, 2_000, 0, 1), 60));

    // Phase 1: payments of both kinds, with and without coupons, refunds, payouts.
    clock.0.store(starts[1], Ordering::SeqCst);
    for (i, user) in (10..=14).enumerate() {
        let i = i as u64;
        let coupon = match user {
            10 => 70,
            11 => 71,
            _ => 0,
        };
        run(&e, pay(1_000 + i, user, 20 + i % 2, 30, 3_000 + 100 * i, coupon, 0));
    }
    run(&e, pay(1_010, 15, 22, 31, 4_000, 0, 0));
    run(&e, pay(1_020, 12, 21, 30, 2_500, 0, 1));
    run(&e, Op::Capture { id: 1_020 });
    run(&e, pay(1_021, 13, 21, 30, 2_600, 0, 1));
    run(&e, Op::Release { id: 1_021 });
    // Held for a week: still authorized at the end.
    run(&e, with_timeout(pay(1_022, 13, 20, 30, 2_700, 0, 1), 604_800));
    run(&e, Op::Refund { id: 1_100, payment: 1_000, amount: 1_000 });
    run(&e, Op::Refund { id: 1_101, payment: 1_000, amount: 2_200 });
    run(&e, Op::Refund { id: 1_102, payment: 1_003, amount: 777 });
    run(&e, Op::Withdraw { id: 1_200, user: 14, channel: 1, amount: 5_000, timeout_s: 0 });
    run(&e, Op::BankResult { id: 1_200, ok: true });
    let Done::Payout { payout: instant, .. } =
        run(&e, Op::Payout { id: 1_300, merchant: 20, amount: 1_000 })
    else {
        panic!("not a payout")
    };
    run(&e, Op::PayoutResult { payout: instant, ok: true });
    let Done::Payout { payout: failed, .. } =
        run(&e, Op::Payout { id: 1_301, merchant: 21, amount: 500 })
    else {
        panic!("not a payout")
    };
    run(&e, Op::PayoutResult { payout: failed, ok: false });
    // An id the machine gives (above 2^52), and an operator's own accounts and transfer.
    run(&e, Op::Keyed { key: 9, op: Box::new(pay(0, 11, 21, 30, 1_500, 0, 0)) });
    run(
        &e,
        Op::LedgerAccounts(vec![
            Account { id: 900_001, ledger: CNY, code: 77, ..Account::default() },
            Account { id: 900_002, ledger: CNY, code: 77, ..Account::default() },
        ]),
    );
    run(
        &e,
        Op::LedgerTransfers(vec![Transfer {
            id: 900_003,
            debit_account_id: 900_001,
            credit_account_id: 900_002,
            amount: 123_456_789_012_345_678_901_234_567,
            ledger: CNY,
            code: 77,
            ..Transfer::default()
        }]),
    );
    e.checkpoint().expect("checkpoint");

    // Phase 2: a settlement run (one payout confirmed), more payments and a refund.
    clock.0.store(starts[2], Ordering::SeqCst);
    run(&e, pay(2_000, 10, 21, 30, 1_800, 0, 0));
    run(&e, Op::Refund { id: 2_100, payment: 1_004, amount: 3_400 });
    let Done::Settlement { lines } = run(&e, Op::SettlementRun { id: 2_500 }) else {
        panic!("not a settlement")
    };
    let paid = lines.iter().find(|l| l.payout != 0).expect("a settlement payout");
    run(&e, Op::PayoutResult { payout: paid.payout, ok: true });
    run(&e, Op::Withdraw { id: 2_200, user: 11, channel: 1, amount: 1_000, timeout_s: 0 });
    e.shutdown();
    Phases { starts, end: starts[2] + HOUR_NS }
}

/// What the recovered machine holds, copied out of the engine.
struct State {
    transfers: Vec<(Transfer, Option<PendingStatus>)>,
    payments: BTreeMap<u64, (Payment, PaymentStatus)>,
    /// Refund id → (payment, amount).
    refunds: BTreeMap<u64, (u64, u64)>,
    payouts: BTreeMap<u128, (Payout, Option<PendingStatus>)>,
    holds: BTreeMap<u64, (Hold, Option<PendingStatus>)>,
}

fn state(m: &PaymentsMachine) -> State {
    let ledger = m.ledger();
    let transfers = ledger.transfers().iter().map(|t| (*t, ledger.pending_status(t.id))).collect();
    let all = m.payments_all();
    let refunds = all
        .iter()
        .flat_map(|(_, p)| p.refunds.iter().map(|&r| (r, m.refund_of(r).expect("refund"))))
        .collect();
    let payments = all
        .into_iter()
        .map(|(id, p)| {
            let status = m.payment_status(id, &p);
            (id, (p, status))
        })
        .collect();
    let payouts =
        m.payouts().into_iter().map(|(id, p)| (id, (p, ledger.pending_status(id)))).collect();
    let holds =
        m.holds().into_iter().map(|(id, h)| (id, (h, m.hold_of(id).expect("hold").1))).collect();
    State { transfers, payments, refunds, payouts, holds }
}

/// Recovers the folder (with a clock that stands still at the end of the day, so nothing new
/// happens), exports `range` and copies the state out.
fn recover_and_export(data: &Path, options: ExportOptions, end: u64) -> State {
    let clock = TestClock(Arc::new(AtomicU64::new(end)));
    let e = engine(data, &clock);
    let (written, state) =
        e.read(move |m| (export(m, &options).map_err(|e| e.to_string()), state(m))).expect("read");
    let written = written.expect("export");
    assert_eq!(written.len(), Table::ALL.len());
    e.shutdown();
    state
}

/// One table read back: column names and rows of cells. Parquet times come back as whole
/// microseconds (in nanoseconds); CSV times to the nanosecond.
struct Rows {
    names: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Rows {
    fn get<'a>(&self, row: &'a [Cell], name: &str) -> &'a Cell {
        let i = self.names.iter().position(|n| n == name).unwrap_or_else(|| panic!("{name}"));
        &row[i]
    }
    fn text(&self, row: &[Cell], name: &str) -> String {
        match self.get(row, name) {
            Cell::Text(t) => t.clone(),
            other => panic!("{name} is {other:?}"),
        }
    }
    fn text_or_none(&self, row: &[Cell], name: &str) -> Option<String> {
        match self.get(row, name) {
            Cell::Null => None,
            Cell::Text(t) => Some(t.clone()),
            other => panic!("{name} is {other:?}"),
        }
    }
    fn int(&self, row: &[Cell], name: &str) -> u64 {
        match self.get(row, name) {
            Cell::Int(n) => u64::try_from(*n).expect("not negative"),
            other => panic!("{name} is {other:?}"),
        }
    }
}

fn read_parquet(path: &Path, table: Table) -> Rows {
    let file = File::open(path).expect("open");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet").build().unwrap();
    let schema = table.schema();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.expect("batch");
        assert_eq!(batch.schema(), schema, "{}: the schema is kept", table.name());
        for r in 0..batch.num_rows() {
            let row = table
                .columns()
                .iter()
                .enumerate()
                .map(|(c, column)| {
                    let array = batch.column(c);
                    if array.is_null(r) {
                        return Cell::Null;
                    }
                    match column.kind {
                        ColumnType::Text => Cell::Text(array.as_string::<i32>().value(r).into()),
                        ColumnType::Int => Cell::Int(array.as_primitive::<Int64Type>().value(r)),
                        ColumnType::Time => {
                            let us = array.as_primitive::<TimestampMicrosecondType>().value(r);
                            Cell::Time(u64::try_from(us).unwrap() * 1_000)
                        }
                        ColumnType::Decimal => {
                            let n = array.as_primitive::<Decimal128Type>().value(r);
                            Cell::Decimal(u128::try_from(n).unwrap())
                        }
                    }
                })
                .collect();
            rows.push(row);
        }
    }
    Rows { names: table.columns().iter().map(|c| c.name.to_owned()).collect(), rows }
}

fn read_csv(path: &Path, table: Table) -> Rows {
    let mut reader = csv::Reader::from_path(path).expect("csv");
    let names: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let expected: Vec<&str> = table.columns().iter().map(|c| c.name).collect();
    assert_eq!(names, expected, "{}: the header", table.name());
    let rows = reader
        .records()
        .map(|record| {
            let record = record.expect("record");
            table
                .columns()
                .iter()
                .zip(record.iter())
                .map(|(column, field)| match column.kind {
                    _ if field.is_empty() && column.nullable => Cell::Null,
                    ColumnType::Text => Cell::Text(field.to_owned()),
                    ColumnType::Int => Cell::Int(field.parse().expect("int")),
                    ColumnType::Time => Cell::Time(parse_time(field).expect("time")),
                    ColumnType::Decimal => Cell::Decimal(field.parse().expect("decimal")),
                })
                .collect()
        })
        .collect();
    Rows { names, rows }
}

fn read(dir: &Path, format: Format, table: Table) -> Rows {
    let path = dir.join(format!("{}.{}", table.name(), format.extension()));
    match format {
        Format::Parquet => read_parquet(&path, table),
        Format::Csv => read_csv(&path, table),
    }
}

fn status_name(s: Option<PendingStatus>) -> Option<&'static str> {
    s.map(|s| match s {
        PendingStatus::Pending => "pending",
        PendingStatus::Posted => "posted",
        PendingStatus::Voided => "voided",
        PendingStatus::Expired => "expired",
    })
}

/// Every row of every table agrees with the machine, and every object is dated by the first
/// transfer that names it.
fn check_against_state(dir: &Path, format: Format, state: &State, range: TimeRange) {
    let name = |t: Table| format!("{format:?} {}", t.name());
    let time_matches = |rows: &Rows, row: &[Cell], column: &str| {
        let ns = rows.int(row, &format!("{column}_ns"));
        let Cell::Time(time) = rows.get(row, column) else { panic!("{column}") };
        let exact = match format {
            Format::Parquet => ns / 1_000 * 1_000,
            Format::Csv => ns,
        };
        assert_eq!(*time, exact, "{column}");
        ns
    };

    // Ledger transfers: exactly those of the range, in ledger order, every field.
    let transfers = read(dir, format, Table::Transfers);
    let expected: Vec<_> =
        state.transfers.iter().filter(|(t, _)| range.contains(t.timestamp)).collect();
    assert_eq!(transfers.rows.len(), expected.len(), "{}", name(Table::Transfers));
    // The first transfer naming each object.
    let mut first: BTreeMap<String, u64> = BTreeMap::new();
    for (row, (t, pending)) in transfers.rows.iter().zip(&expected) {
        let r = &transfers;
        assert_eq!(r.text(row, "id"), t.id.to_string());
        assert_eq!(time_matches(r, row, "timestamp"), t.timestamp);
        assert_eq!(r.text(row, "debit_account_id"), t.debit_account_id.to_string());
        assert_eq!(r.text(row, "credit_account_id"), t.credit_account_id.to_string());
        assert_eq!(r.get(row, "amount"), &Cell::Decimal(t.amount));
        assert_eq!(r.int(row, "ledger"), u64::from(t.ledger));
        assert_eq!(r.int(row, "code"), u64::from(t.code));
        assert_eq!(r.text(row, "flags"), t.flags.names().collect::<Vec<_>>().join(","));
        let pending_id = (t.pending_id != 0).then(|| t.pending_id.to_string());
        assert_eq!(r.text_or_none(row, "pending_id"), pending_id);
        assert_eq!(r.text_or_none(row, "pending_status").as_deref(), status_name(*pending));
        assert_eq!(r.int(row, "timeout_s"), u64::from(t.timeout));
        assert_eq!(r.text(row, "user_data_128"), t.user_data_128.to_string());
        assert_eq!(r.text(row, "user_data_64"), t.user_data_64.to_string());
        assert_eq!(r.int(row, "user_data_32"), u64::from(t.user_data_32));
        let operator = t.code == 77;
        assert_eq!(r.text_or_none(row, "reason").is_none(), operator);
        assert_eq!(r.text_or_none(row, "debit_account_kind").is_none(), operator);
        match r.text_or_none(row, "operation") {
            Some(op) => {
                assert!(!operator);
                first.entry(op).or_insert(t.timestamp);
            }
            None => assert!(operator, "transfer {} names no operation", t.id),
        }
    }

    let payments = read(dir, format, Table::Payments);
    let mut ids = BTreeSet::new();
    for row in &payments.rows {
        let r = &payments;
        let id = r.text(row, "id");
        let (p, status) = &state.payments[&id[4..].parse::<u64>().unwrap()];
        let created = time_matches(r, row, "created_at");
        assert_eq!(first.get(&id), Some(&created), "{id} is dated by its first transfer");
        assert_eq!(r.text(row, "status"), status.name());
        assert_eq!(r.text(row, "method"), if p.channel == 0 { "wallet" } else { "bank_channel" });
        assert_eq!(r.text(row, "currency"), if p.currency == CNY { "CNY" } else { "USD" });
        assert_eq!(r.int(row, "amount"), p.total());
        assert_eq!(r.int(row, "food_amount"), p.food);
        assert_eq!(r.int(row, "delivery_fee"), p.delivery);
        assert_eq!(r.int(row, "discount"), p.legs.coupon);
        assert_eq!(r.int(row, "commission"), p.legs.platform);
        assert_eq!(r.int(row, "merchant_amount"), p.legs.merchant);
        assert_eq!(r.int(row, "amount_refunded"), p.refunded_total());
        assert_eq!(r.text(row, "user"), prefixed("usr", p.user));
        assert_eq!(r.text(row, "merchant"), prefixed("mer", p.merchant));
        assert_eq!(r.text(row, "rider"), prefixed("rdr", p.rider));
        assert_eq!(
            r.text_or_none(row, "coupon"),
            (p.coupon != 0).then(|| prefixed("cpn", p.coupon))
        );
        assert_eq!(
            r.text_or_none(row, "campaign"),
            (p.campaign != 0).then(|| prefixed("cmp", p.campaign))
        );
        assert_eq!(
            r.text_or_none(row, "channel"),
            (p.channel != 0).then(|| prefixed("chn", p.channel))
        );
        assert!(ids.insert(id));
    }
    let created_in_range = |id: &String| first.contains_key(id);
    let expected: BTreeSet<String> =
        state.payments.keys().map(|&id| prefixed("pay", id)).filter(created_in_range).collect();
    assert_eq!(ids, expected, "{}", name(Table::Payments));

    // Refunds: the amount, and legs that add up to it; over a payment, to what it refunded.
    let refunds = read(dir, format, Table::Refunds);
    let mut ids = BTreeSet::new();
    for row in &refunds.rows {
        let r = &refunds;
        let id = r.text(row, "id");
        let (payment, amount) = state.refunds[&id[4..].parse::<u64>().unwrap()];
        let created = time_matches(r, row, "created_at");
        assert_eq!(first.get(&id), Some(&created), "{id}");
        assert_eq!(r.text(row, "payment"), prefixed("pay", payment));
        assert_eq!(r.int(row, "amount"), amount);
        let legs =
            r.int(row, "merchant_amount") + r.int(row, "delivery_fee") + r.int(row, "commission");
        assert_eq!(legs - r.int(row, "discount"), amount, "{id}: legs add up");
        let p = &state.payments[&payment].0;
        assert_eq!(r.text(row, "user"), prefixed("usr", p.user));
        assert_eq!(r.text(row, "merchant"), prefixed("mer", p.merchant));
        assert!(ids.insert(id));
    }
    let expected: BTreeSet<String> =
        state.refunds.keys().map(|&id| prefixed("ref", id)).filter(created_in_range).collect();
    assert_eq!(ids, expected, "{}", name(Table::Refunds));
    if range == TimeRange::ALL {
        for (&id, (p, _)) in &state.payments {
            let merchant: u64 = refunds
                .rows
                .iter()
                .filter(|row| refunds.text(row, "payment") == prefixed("pay", id))
                .map(|row| refunds.int(row, "merchant_amount"))
                .sum();
            assert_eq!(merchant, p.refunded.merchant, "pay_{id}: merchant legs of its refunds");
        }
    }

    let payouts = read(dir, format, Table::Payouts);
    let mut ids = BTreeSet::new();
    for row in &payouts.rows {
        let r = &payouts;
        let id = r.text(row, "id");
        let (&ledger_id, (p, status)) =
            state.payouts.iter().find(|(&k, _)| payout_id(k) == id).expect("a payout");
        let created = time_matches(r, row, "created_at");
        assert_eq!(first.get(&id), Some(&created), "{id}");
        let expected_status = match status {
            Some(PendingStatus::Pending) => "pending",
            Some(PendingStatus::Posted) => "paid",
            Some(PendingStatus::Voided) => "failed",
            other => panic!("{other:?}"),
        };
        assert_eq!(r.text(row, "status"), expected_status);
        assert_eq!(r.text(row, "merchant"), prefixed("mer", p.merchant));
        assert_eq!(r.text(row, "channel"), prefixed("chn", p.channel));
        assert_eq!(r.int(row, "amount"), p.amount);
        let run = r.text_or_none(row, "settlement_run");
        assert_eq!(run.is_some(), ledger_id >> 120 == 11, "{id}: {run:?}");
        assert!(ids.insert(id));
    }
    let expected: BTreeSet<String> =
        state.payouts.keys().map(|&id| payout_id(id)).filter(created_in_range).collect();
    assert_eq!(ids, expected, "{}", name(Table::Payouts));

    let holds = read(dir, format, Table::TopupsWithdrawals);
    let mut ids = BTreeSet::new();
    for row in &holds.rows {
        let r = &holds;
        let id = r.text(row, "id");
        let (h, status) = &state.holds[&id[4..].parse::<u64>().unwrap()];
        let created = time_matches(r, row, "created_at");
        assert_eq!(first.get(&id), Some(&created), "{id}");
        let topup = matches!(h.kind, huifu_payments::HoldKind::TopUp);
        assert_eq!(r.text(row, "kind"), if topup { "topup" } else { "withdrawal" });
        assert_eq!(&id[..4], if topup { "top_" } else { "wdr_" });
        let expected_status = match status {
            Some(PendingStatus::Pending) => "pending",
            Some(PendingStatus::Posted) => "succeeded",
            Some(PendingStatus::Voided) => "failed",
            Some(PendingStatus::Expired) => "expired",
            None => panic!("{id}"),
        };
        assert_eq!(r.text(row, "status"), expected_status);
        assert_eq!(r.text(row, "user"), prefixed("usr", h.user));
        assert_eq!(r.text(row, "channel"), prefixed("chn", h.channel));
        assert_eq!(r.int(row, "amount"), h.amount);
        assert!(ids.insert(id));
    }
    let expected: BTreeSet<String> = state
        .holds
        .iter()
        .map(|(&id, (h, _))| match h.kind {
            huifu_payments::HoldKind::TopUp => prefixed("top", id),
            huifu_payments::HoldKind::Withdrawal => prefixed("wdr", id),
        })
        .filter(created_in_range)
        .collect();
    assert_eq!(ids, expected, "{}", name(Table::TopupsWithdrawals));

    // Every table is in time order.
    for (rows, column) in [
        (&payments, "created_at_ns"),
        (&refunds, "created_at_ns"),
        (&payouts, "created_at_ns"),
        (&holds, "created_at_ns"),
        (&transfers, "timestamp_ns"),
    ] {
        let times: Vec<u64> = rows.rows.iter().map(|row| rows.int(row, column)).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{column} in order");
        assert!(times.iter().all(|&t| range.contains(t)), "{column} in range");
    }
}

fn options(out: &Path, format: Format, range: TimeRange) -> ExportOptions {
    ExportOptions { range, format, out_dir: out.to_path_buf(), overwrite: false }
}

#[test]
fn parquet_and_csv_exports_match_the_recovered_machine_row_by_row() {
    let data = tempfile::tempdir().unwrap();
    let phases = workload(data.path());
    for format in [Format::Parquet, Format::Csv] {
        let out = tempfile::tempdir().unwrap();
        let state = recover_and_export(
            data.path(),
            options(out.path(), format, TimeRange::ALL),
            phases.end,
        );
        // The workload made every kind of object and status.
        assert!(state.payments.values().any(|(_, s)| *s == PaymentStatus::Expired));
        assert!(state.payments.values().any(|(_, s)| *s == PaymentStatus::Released));
        assert!(state.payments.values().any(|(_, s)| *s == PaymentStatus::Authorized));
        assert!(state.payments.keys().any(|&id| id >= huifu_payments::constants::ALLOCATED_ID_MIN));
        assert!(state.holds.values().any(|(_, s)| *s == Some(PendingStatus::Voided)));
        assert!(state.holds.values().any(|(_, s)| *s == Some(PendingStatus::Pending)));
        assert!(state.payouts.values().any(|(_, s)| *s == Some(PendingStatus::Pending)));
        check_against_state(out.path(), format, &state, TimeRange::ALL);
        let payments = read(out.path(), format, Table::Payments);
        assert_eq!(payments.rows.len(), state.payments.len());
    }
}

#[test]
fn a_time_range_selects_what_happened_in_it_and_consecutive_ranges_share_nothing() {
    let data = tempfile::tempdir().unwrap();
    let phases = workload(data.path());
    // Bounds half-way between the phases: an operation at engine time `t` gives its transfers
    // the nanoseconds just up to `t`, so a bound exactly at a phase's start would cut its first
    // operation off.
    let [_, p1, p2] = phases.starts.map(|start| start - HOUR_NS / 2);
    let ranges = [
        TimeRange::new(0, p1).unwrap(),
        TimeRange::new(p1, p2).unwrap(),
        TimeRange::new(p2, u64::MAX).unwrap(),
    ];
    let mut seen: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut transfers = 0;
    let mut total = 0;
    for (phase, range) in ranges.into_iter().enumerate() {
        let out = tempfile::tempdir().unwrap();
        let state = recover_and_export(
            data.path(),
            options(out.path(), Format::Parquet, range),
            phases.end,
        );
        total = state.transfers.len();
        check_against_state(out.path(), Format::Parquet, &state, range);
        // The workload's ids say which phase made each payment and refund.
        for table in [Table::Payments, Table::Refunds] {
            let rows = read(out.path(), Format::Parquet, table);
            // Phase 0 made no refund.
            let made_some = table == Table::Payments || phase > 0;
            assert_eq!(!rows.rows.is_empty(), made_some, "{} of phase {phase}", table.name());
            for row in &rows.rows {
                let id = rows.text(row, "id");
                let n: u64 = id[4..].parse().unwrap();
                let made =
                    if n >= huifu_payments::constants::ALLOCATED_ID_MIN { 1 } else { n / 1_000 };
                assert_eq!(
                    made,
                    phase as u64,
                    "{id} at {} ({p1}, {p2})",
                    rows.int(row, "created_at_ns")
                );
                assert!(seen.entry(table.name()).or_default().insert(id));
            }
        }
        transfers += read(out.path(), Format::Parquet, Table::Transfers).rows.len();
    }
    assert_eq!(transfers, total, "the three ranges hold every transfer once");
}

#[test]
fn an_export_refuses_to_replace_files_unless_told_and_an_empty_range_writes_headers() {
    let data = tempfile::tempdir().unwrap();
    let phases = workload(data.path());
    let out = tempfile::tempdir().unwrap();
    let late = TimeRange::new(phases.end, u64::MAX).unwrap();
    recover_and_export(data.path(), options(out.path(), Format::Csv, late), phases.end);
    for table in Table::ALL {
        let rows = read(out.path(), Format::Csv, table);
        assert!(rows.rows.is_empty(), "{}", table.name());
    }
    let clock = TestClock(Arc::new(AtomicU64::new(phases.end)));
    let e = engine(data.path(), &clock);
    let again = options(out.path(), Format::Csv, TimeRange::ALL);
    let error = e.read(move |m| export(m, &again).map(|_| ()).map_err(|e| e.to_string())).unwrap();
    let expected = ExportError::Exists(out.path().join("payments.csv")).to_string();
    assert_eq!(error, Err(expected));
    let again =
        ExportOptions { overwrite: true, ..options(out.path(), Format::Csv, TimeRange::ALL) };
    e.read(move |m| export(m, &again).map(|_| ()).map_err(|e| e.to_string())).unwrap().unwrap();
    assert!(!read(out.path(), Format::Csv, Table::Payments).rows.is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_failed_export_leaves_no_file_behind() {
    let mut m = PaymentsMachine::new();
    let now = parse_time("2026-01-31T00:00:00Z").unwrap();
    let accounts = (1..=2).map(|id| Account { id, ledger: CNY, code: 1, ..Account::default() });
    m.apply(now, &Op::LedgerAccounts(accounts.collect())).unwrap();
    let huge = Transfer {
        id: 3,
        debit_account_id: 1,
        credit_account_id: 2,
        amount: huifu_export::constants::DECIMAL_MAX + 1,
        ledger: CNY,
        code: 1,
        ..Transfer::default()
    };
    m.apply(now, &Op::LedgerTransfers(vec![huge])).unwrap();
    for format in [Format::Parquet, Format::Csv] {
        let out = tempfile::tempdir().unwrap();
        let error = export(&m, &options(out.path(), format, TimeRange::ALL)).unwrap_err();
        assert!(matches!(error, ExportError::AmountTooLarge { transfer: 3, .. }), "{error}");
        let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
        assert!(left.is_empty(), "{format:?}: {left:?}");
    }
}
