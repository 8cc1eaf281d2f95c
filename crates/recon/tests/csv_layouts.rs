//! CSV statements in the layouts of docs/csv-layouts/: an Alipay account statement export and
//! a Chinese bank's transaction detail export of UnionPay settlements (the samples in
//! tests/data follow the column names and conventions those exports use, described in the
//! layout files), imported, kept and reconciled.

use std::path::Path;

use huifu_recon::csv_map::{self, Layout};
use huifu_recon::statement::parse_day;
use huifu_recon::{matcher, Direction, Entry, Format, MatchConfig, State, Store};

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn alipay() -> (Layout, String) {
    let layout = Layout::parse(&read("../../docs/csv-layouts/alipay-settlement.toml")).unwrap();
    (layout, read("tests/data/alipay_day.csv"))
}

fn bank() -> (Layout, String) {
    let layout = Layout::parse(&read("../../docs/csv-layouts/unionpay-bank.toml")).unwrap();
    (layout, read("tests/data/bank_cn_day.csv"))
}

fn entry(id: u128, direction: Direction, amount_minor: u64, reference: &str, batch: &str) -> Entry {
    Entry {
        transfer_id: id,
        direction,
        amount_minor,
        timestamp_ns: 0,
        day: parse_day("2026-11-26").unwrap(),
        reference: reference.into(),
        batch: batch.into(),
    }
}

#[test]
fn an_alipay_export_reads_and_reconciles() {
    let (layout, text) = alipay();
    let s = csv_map::parse(&layout, text.as_bytes()).unwrap();
    assert_eq!(s.id, "2026-11-26..2026-11-26");
    assert_eq!((s.account.as_str(), s.currency), ("20881234567890120156", 156));
    let got: Vec<_> = s
        .lines
        .iter()
        .map(|l| (l.number, l.direction, l.amount_minor, l.reference.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (6, Direction::Credit, 20_000, "top_17"),
            (7, Direction::Credit, 3_550, "pay_12"),
            (8, Direction::Debit, 12_000, "2026112622001400011000000003"),
        ],
        "the footer's `#` rows are skipped; without an order number, the trade number"
    );
    assert_eq!(s.lines[2].other_references, ["wdr_9"], "a one-word remark is tried after it");
    assert_eq!(s.lines[0].bank_reference, "20261126200040011100010001", "the tab is trimmed");
    assert_eq!(s.lines[0].other_references, ["2026112622001400011000000001"]);
    let entries = [
        entry(1, Direction::Credit, 20_000, "top_17", ""),
        entry(2, Direction::Credit, 3_550, "pay_12", ""),
        entry(3, Direction::Debit, 12_000, "wdr_9", ""),
    ];
    let items = matcher::reconcile(&[s], &entries, &MatchConfig::default());
    assert!(items.iter().all(|i| i.state == State::Matched), "{items:?}");
    assert_eq!(items.len(), 3);
}

#[test]
fn a_bank_export_with_a_direction_column_reads_and_reconciles() {
    let (layout, text) = bank();
    let s = csv_map::parse(&layout, text.as_bytes()).unwrap();
    assert_eq!(s.account, "6222021001123456789");
    let got: Vec<_> = s
        .lines
        .iter()
        .map(|l| (l.number, l.direction, l.amount_minor, l.reference.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (4, Direction::Credit, 120_000, "top_18"),
            (5, Direction::Credit, 8_800, "pay_13"),
            (6, Direction::Debit, 200_000, "stl_3"),
        ],
        "thousands separators, 借/贷, the order number when the remark is empty"
    );
    let entries = [
        entry(1, Direction::Credit, 120_000, "top_18", ""),
        entry(2, Direction::Credit, 8_800, "pay_13", ""),
        entry(3, Direction::Debit, 150_000, "po_1", "stl_3"),
        entry(4, Direction::Debit, 50_000, "po_2", "stl_3"),
    ];
    let items = matcher::reconcile(&[s], &entries, &MatchConfig::default());
    let states: Vec<_> = items.iter().map(|i| (i.state, i.entries.len())).collect();
    assert_eq!(states, [(State::Matched, 1), (State::Matched, 1), (State::Matched, 2)]);
}

#[test]
fn a_layout_statement_is_kept_with_its_layout_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let layout = read("../../docs/csv-layouts/unionpay-bank.toml");
    let text = read("tests/data/bank_cn_day.csv");
    let imported =
        store.import_csv_layout(&layout, text.as_bytes(), Some(1), |_| Some(156)).unwrap();
    let (channel, stored, new) = &imported.stored[0];
    assert!(*new && *channel == 1 && stored.format == Format::CsvLayout);
    let again = store.import_csv_layout(&layout, text.as_bytes(), Some(1), |_| Some(156)).unwrap();
    assert!(!again.stored[0].2, "the same file in the same layout is kept once");
    let read_back = store.statements(1).unwrap();
    assert_eq!(read_back.len(), 1);
    assert_eq!(read_back[0].statement, stored.statement);
    // The same days in another layout are another statement with the same id: a conflict.
    let other =
        layout.replace("thousands_separator = \",\"\n", "thousands_separator = \",\"\n# v2\n");
    let e = store.import_csv_layout(&other, text.as_bytes(), Some(1), |_| Some(156)).unwrap_err();
    assert!(e.to_string().contains("already imported with different content"), "{e}");
}

#[test]
fn errors_name_the_line_and_the_column() {
    let (layout, text) = bank();
    let cases = [
        ("20261126,170000,借", "2026-11-26,170000,借", "line 6, column 交易日期: `2026-11-26` is not a date in the layout's format `%Y%m%d`"),
        ("20261126,170000,借", "20261126,170000,出", "line 6, column 借贷标志: `出` is none of the layout's credit (贷, C) or debit (借, D) values"),
        ("\"2,000.00\"", "\"2,000.005\"", "line 6, column 交易金额: `2000.005` has more decimals than CNY has (2)"),
        ("\"2,000.00\"", "abc", "line 6, column 交易金额: `abc` is not an amount in CNY (2 decimals)"),
        (",ICBC2611260003,", ",ICBC2611260003ICBC2611260003ICBC2611260003,", "line 6, column 交易流水号: longer than 35 bytes"),
        ("交易日期,", "日期,", "line 3: no column `交易日期` (columns.booking_date) in the header"),
    ];
    for (from, to, expected) in cases {
        let bad = text.replace(from, to);
        let e = csv_map::parse(&layout, bad.as_bytes()).unwrap_err().to_string();
        assert_eq!(e, expected);
    }
    let short = text.replace(",ICBC2611260003,stl_3,", "");
    let e = csv_map::parse(&layout, short.as_bytes()).unwrap_err().to_string();
    assert!(e.starts_with("line 6, column 交易流水号: missing"), "{e}");
    let (layout, text) = alipay();
    let both = text.replace("35.50,0.00,", "35.50,-1.00,");
    let e = csv_map::parse(&layout, both.as_bytes()).unwrap_err().to_string();
    assert_eq!(
        e,
        "line 7, column 收入金额（+元）: an amount in both 收入金额（+元） and 支出金额（-元）"
    );
    let none = text.replace("35.50,0.00,", "0.00,,");
    let e = csv_map::parse(&layout, none.as_bytes()).unwrap_err().to_string();
    assert!(e.starts_with("line 7, column 收入金额（+元）: no amount"), "{e}");
    let latin1 = [text.as_bytes(), b"\xff,x\n"].concat();
    let e = csv_map::parse(&layout, &latin1).unwrap_err().to_string();
    assert!(e.contains("not UTF-8"), "{e}");
}

#[test]
fn numbered_columns_without_a_header() {
    let layout = Layout::parse(
        "delimiter = \"\\t\"\nheader = false\ndate_format = \"%Y%m%d\"\ncurrency = \"KWD\"\n\
         [columns]\naccount = 1\nbooking_date = 2\namount = 3\nreference = 4\n",
    )
    .unwrap();
    let text = "KW-1\t20261126\t12.345\ttop_1\nKW-1\t20261127\t-0.5\twdr_2\n";
    let s = csv_map::parse(&layout, text.as_bytes()).unwrap();
    assert_eq!(
        (s.account.as_str(), s.currency, s.id.as_str()),
        ("KW-1", 414, "2026-11-26..2026-11-27")
    );
    let got: Vec<_> = s.lines.iter().map(|l| (l.direction, l.amount_minor)).collect();
    assert_eq!(got, [(Direction::Credit, 12_345), (Direction::Debit, 500)], "a minus is a debit");
    let other = text.replace("KW-1\t20261127", "KW-2\t20261127");
    let e = csv_map::parse(&layout, other.as_bytes()).unwrap_err().to_string();
    assert_eq!(
        e,
        "line 2, column 1: `KW-2` differs from the first row's `KW-1` (a file is one statement)"
    );
}
