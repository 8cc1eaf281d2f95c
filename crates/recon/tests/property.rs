//! For a random ledger and the simulated bank's statement of it with random discrepancies,
//! reconciliation reports exactly the discrepancies injected: each one as the exception it
//! should be, and nothing else. Half the cases go through a file format and back.

use huifu_recon::generate::{generate, score, BankConfig};
use huifu_recon::statement::ns_of_day;
use huifu_recon::{camt053, csv_layout, reconcile, Direction, Entry, MatchConfig};
use proptest::prelude::*;

const DAY: i32 = 20_418;
const PERIOD_DAYS: i32 = 3;

#[derive(Clone, Debug)]
enum Kind {
    Referenced,
    InBatch(u8),
    Unreferenced,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        6 => Just(Kind::Referenced),
        2 => (0u8..3).prop_map(Kind::InBatch),
        1 => Just(Kind::Unreferenced),
    ]
}

fn ledger() -> impl Strategy<Value = Vec<Entry>> {
    // Small amounts, so that equal amounts are common and amount matching is put to the test.
    prop::collection::vec((kind(), any::<bool>(), 1u64..300, 0..PERIOD_DAYS), 0..150).prop_map(
        |raw| {
            let mut raw = raw;
            raw.sort_by_key(|r| r.3);
            raw.into_iter()
                .enumerate()
                .map(|(i, (kind, credit, amount, day))| {
                    let id = u128::try_from(i + 1).unwrap();
                    let day = DAY + day;
                    let (direction, reference, batch) = match kind {
                        Kind::Referenced => {
                            let d = if credit { Direction::Credit } else { Direction::Debit };
                            let prefix = if credit { "top" } else { "wdr" };
                            (d, format!("{prefix}_{id}"), String::new())
                        }
                        Kind::InBatch(run) => {
                            (Direction::Debit, format!("po_{id:x}"), format!("stl_{run}"))
                        }
                        Kind::Unreferenced => (
                            if credit { Direction::Credit } else { Direction::Debit },
                            String::new(),
                            String::new(),
                        ),
                    };
                    Entry {
                        transfer_id: id,
                        direction,
                        amount_minor: amount,
                        timestamp_ns: ns_of_day(day) + u64::try_from(id).unwrap(),
                        day,
                        reference,
                        batch,
                    }
                })
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn reconciliation_finds_exactly_the_injected_discrepancies(
        entries in ledger(),
        rate in prop_oneof![Just(0u32), 1u32..1_000_000, Just(1_000_000)],
        seed in any::<u64>(),
        through in 0u8..3,
    ) {
        let config = BankConfig {
            statement_id: format!("SIM-{seed}"),
            account: "CLR-1".into(),
            currency: 156,
            from_day: DAY,
            to_day: DAY + PERIOD_DAYS - 1,
            opening_minor: 0,
            discrepancies_per_million: rate,
            seed,
        };
        let g = generate(&entries, &config);
        let statement = match through {
            0 => g.statement.clone(),
            1 => camt053::parse(camt053::write(&g.statement, "2026-11-27T00:00:00Z").as_bytes()).unwrap(),
            _ => {
                let mut s = csv_layout::parse(csv_layout::write(&g.statement).as_bytes()).unwrap();
                s.opening_minor = g.statement.opening_minor;
                s.closing_minor = g.statement.closing_minor;
                s
            }
        };
        let statements = [statement];
        let items = reconcile(&statements, &entries, &MatchConfig::default());
        let s = score(&statements, &entries, &items, &g.injected);
        prop_assert_eq!(s.found, s.injected, "missed {:?}", s.missed);
        prop_assert_eq!(s.false_alarms, 0, "false alarms {:?}", s.alarms);
        if rate == 1_000_000 && !entries.is_empty() {
            prop_assert!(!g.injected.is_empty());
        }
    }
}
