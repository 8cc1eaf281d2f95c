//! The id index: where a transfer with a given id is, as its timestamp.
//!
//! Ids are kept in `index_order`: bits 16 to 119, then the top byte, then bits 0 to 15. In
//! the payment domain (`tag << 120 | op << 8 | leg`) that is the operation without its lowest
//! byte, the kind of operation, then the operation's lowest byte and the leg. The first 14
//! bytes of that order are a group's key and the last two its member: a group is every leg of
//! one kind of operation among 256 consecutive operation ids, and it is one entry of the index
//! instead of one per id or per operation. Any other ids work the same, a group per id at
//! worst.
//!
//! An entry is its members as runs, in member order: each run is a member, how many follow it
//! one by one (members and timestamps both one apart: a chain's legs), and the first one's
//! timestamp. A run is written as varints of the gap since the previous run's last member (the
//! first run: its member) and of how many follow, then its timestamp: the first run's as 8
//! bytes, big-endian, a later run's as a zigzag varint of how far it is from the previous
//! run's last timestamp. The operations of a group were made moments apart, so an operation's
//! legs take a few bytes instead of a key, a timestamp and the store's own bytes for an entry
//! each (a 10 M simulated day: 40 MB for 13.4 M operations, against 160 MB with an entry per
//! operation).
//!
//! A lookup reads the one key of the id's group. A group whose members leave memory in two
//! puts (operations on both sides of the end of a put, or made by later operations, such as
//! the captures of a group's bank payments) is merged with what the index holds by the thread
//! writing the second, so the entry always holds every member written so far.
//!
//! The kind sits below the operation's upper bytes: ids that name what made them in their
//! top byte and count up below it would otherwise keep one stretch of the index per kind, and
//! every batch moved out would land inside each of them, overlapping the whole index at every
//! level; in this order the groups of one stretch of time are together and newer than the
//! rest, so a batch moved out overlaps little and compaction can move tables down instead.

use huifu_ledger::varint;

use crate::encoding::{unzigzag, zigzag, Reader};

/// Bytes of a group's key.
pub(crate) const GROUP_KEY_BYTES: usize = 14;

/// A member of a group: the lowest 16 bits of an id in `index_order`.
pub(crate) type Member = u16;

/// The id's place in the index: bits 16 to 119, then the top byte, then bits 0 to 15. Ids of
/// a group are neighbours, in member order.
pub(crate) fn index_order(id: u128) -> u128 {
    ((id << 8) & !0xFF_FFFF) | ((id >> 120) << 16) | (id & 0xFFFF)
}

/// The index key of the group of an id in `index_order`: its bits above the member.
pub(crate) fn group_key(ordered: u128) -> [u8; GROUP_KEY_BYTES] {
    let bytes = ordered.to_be_bytes();
    bytes[..GROUP_KEY_BYTES].try_into().expect("fourteen bytes")
}

/// Whether two ids in `index_order` are of one group.
pub(crate) fn same_group(a: u128, b: u128) -> bool {
    a >> 16 == b >> 16
}

/// A group's member of an id in `index_order`.
pub(crate) fn member(ordered: u128) -> Member {
    // The lowest 16 bits: truncation is the point.
    ordered as Member
}

/// Appends the runs of `members` (by member, each at most once) to `out`.
pub(crate) fn encode(members: &[(Member, u64)], out: &mut Vec<u8>) {
    debug_assert!(members.windows(2).all(|w| w[0].0 < w[1].0));
    // The previous run's last member and timestamp.
    let mut last: Option<(Member, u64)> = None;
    let mut rest = members;
    while let Some(&(first, timestamp)) = rest.first() {
        let mut n = 1;
        while n < rest.len()
            && u64::from(rest[n].0) == u64::from(first) + n as u64
            && rest[n].1 == timestamp.wrapping_add(n as u64)
        {
            n += 1;
        }
        let after = n - 1;
        match last {
            None => {
                varint::put(out, u128::from(first));
                varint::put(out, after as u128);
                out.extend_from_slice(&timestamp.to_be_bytes());
            }
            Some((member, ts)) => {
                varint::put(out, u128::from(first - member - 1));
                varint::put(out, after as u128);
                varint::put(out, zigzag(ts, timestamp));
            }
        }
        last = Some((rest[after].0, rest[after].1));
        rest = &rest[n..];
    }
}

/// The runs of an entry: first member, how many follow it, first timestamp; an `Err` (and
/// then nothing) where the bytes are not runs as `encode` writes them.
fn runs(bytes: &[u8]) -> impl Iterator<Item = Result<(Member, Member, u64), ()>> + '_ {
    let mut r = Reader::new(bytes);
    let mut last: Option<(Member, u64)> = None;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || r.is_done() {
            return None;
        }
        let mut run = || -> Result<(Member, Member, u64), ()> {
            // A varint in as few bytes as it takes: one encoding per entry.
            let mut varint = || -> Result<u128, ()> {
                let before = r.rest();
                let value: u128 = r.narrow().map_err(drop)?;
                let len = before.len() - r.rest().len();
                if len > 1 && before[len - 1] == 0 {
                    return Err(());
                }
                Ok(value)
            };
            let gap = Member::try_from(varint()?).map_err(drop)?;
            let after = Member::try_from(varint()?).map_err(drop)?;
            let (first, timestamp) = match last {
                None => (gap, r.be_u64().map_err(drop)?),
                Some((member, ts)) => {
                    let first = member.checked_add(1).and_then(|m| m.checked_add(gap)).ok_or(())?;
                    let timestamp = unzigzag(ts, varint()?).ok_or(())?;
                    // A run that goes on from the previous one is part of it: one encoding.
                    if gap == 0 && timestamp == ts.wrapping_add(1) {
                        return Err(());
                    }
                    (first, timestamp)
                }
            };
            first.checked_add(after).ok_or(())?;
            last = Some((first + after, timestamp.wrapping_add(u64::from(after))));
            Ok((first, after, timestamp))
        };
        let result = run();
        failed = result.is_err();
        Some(result)
    })
}

/// Whether `bytes` is one or more runs, in the one way `encode` writes them.
pub(crate) fn valid(bytes: &[u8]) -> bool {
    !bytes.is_empty() && runs(bytes).all(|r| r.is_ok())
}

/// The timestamp of `member` in a group's entry (`valid`), if the group has it.
pub(crate) fn find(bytes: &[u8], member: Member) -> Option<u64> {
    runs(bytes).map_while(Result::ok).take_while(|&(first, _, _)| first <= member).find_map(
        |(first, after, timestamp)| {
            let k = member - first;
            (k <= after).then(|| timestamp.wrapping_add(u64::from(k)))
        },
    )
}

/// Adds the members of a group's entry (`valid`) that `members` lacks, keeping them in member
/// order. A member in both keeps the timestamp of `members` (they are the same fact: an id is
/// given once, and a put again after a restart writes what was written before).
pub(crate) fn merge(bytes: &[u8], members: &mut Vec<(Member, u64)>) {
    let before = members.len();
    for (first, after, timestamp) in runs(bytes).map_while(Result::ok) {
        for k in 0..=after {
            let m = first + k;
            if members[..before].binary_search_by_key(&m, |&(m, _)| m).is_err() {
                members.push((m, timestamp.wrapping_add(u64::from(k))));
            }
        }
    }
    members.sort_unstable_by_key(|&(m, _)| m);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(members: &[(Member, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(members, &mut out);
        out
    }

    /// Member `leg` of operation `op` of a group (its lowest byte).
    fn m(op: u8, leg: u8) -> Member {
        Member::from(op) << 8 | Member::from(leg)
    }

    #[test]
    fn the_legs_of_one_operation_are_one_run() {
        let legs: Vec<(Member, u64)> =
            (0..5).map(|leg| (m(0, leg), 1_000 + u64::from(leg))).collect();
        let bytes = encoded(&legs);
        // Member 0, 4 after it, the timestamp.
        assert_eq!(bytes.len(), 1 + 1 + 8);
        assert!(valid(&bytes));
        for (member, ts) in legs {
            assert_eq!(find(&bytes, member), Some(ts));
        }
        assert_eq!(find(&bytes, 5), None);
        assert_eq!(find(&bytes, Member::MAX), None);
    }

    #[test]
    fn later_operations_of_a_group_take_a_few_bytes_each() {
        // 256 payments of five legs, each a moment after the one before, some out of order.
        let members: Vec<(Member, u64)> = (0..=255u8)
            .flat_map(|op| {
                let late = if op % 7 == 3 { 5_000 } else { 0 };
                let start = (1 << 60) + u64::from(op) * 40 + late;
                (0..5).map(move |leg| (m(op, leg), start + u64::from(leg)))
            })
            .collect();
        let bytes = encoded(&members);
        // Each operation after the first: a two-byte gap (251), one byte of count and one or
        // two of time.
        assert!(bytes.len() <= 10 + 255 * 5, "{} bytes", bytes.len());
        assert!(valid(&bytes));
        for &(member, ts) in &members {
            assert_eq!(find(&bytes, member), Some(ts), "member {member}");
        }
        assert_eq!(find(&bytes, m(3, 5)), None);
    }

    #[test]
    fn gaps_in_members_or_time_start_a_new_run() {
        // Member 2 missing; member 4 a moment later than the run would say, the last one
        // earlier than the run before it.
        let members = [(0, 10), (1, 11), (3, 13), (4, 20), (Member::MAX, 7)];
        let bytes = encoded(&members);
        assert!(valid(&bytes));
        assert_eq!(runs(&bytes).count(), 4);
        for (member, ts) in members {
            assert_eq!(find(&bytes, member), Some(ts), "member {member}");
        }
        for member in [2, 5, Member::MAX - 1] {
            assert_eq!(find(&bytes, member), None, "member {member}");
        }
    }

    #[test]
    fn a_whole_group_is_one_run() {
        let members: Vec<(Member, u64)> =
            (0..=Member::MAX).map(|member| (member, 1 << 40 | u64::from(member))).collect();
        let bytes = encoded(&members);
        // Member 0, 65,535 after it in a three-byte varint, the timestamp.
        assert_eq!(bytes.len(), 1 + 3 + 8);
        assert_eq!(find(&bytes, Member::MAX), Some(1 << 40 | 0xFFFF));
    }

    #[test]
    fn merging_keeps_every_member_once() {
        let stored = encoded(&[(0, 100), (1, 101), (7, 300)]);
        // Member 1 again (written again after a restart), 2 and 3 new.
        let mut members = vec![(1, 101), (2, 102), (3, 103)];
        merge(&stored, &mut members);
        assert_eq!(members, [(0, 100), (1, 101), (2, 102), (3, 103), (7, 300)]);
        assert_eq!(runs(&encoded(&members)).count(), 2);
    }

    #[test]
    fn the_index_order_keeps_groups_together_and_time_first() {
        let id = |tag: u128, op: u128, leg: u128| tag << 120 | op << 8 | leg;
        // Members of a group are neighbours in member order ...
        assert_eq!(index_order(id(3, 9, 1)), index_order(id(3, 9, 0)) + 1);
        assert_eq!(group_key(index_order(id(3, 9, 4))), group_key(index_order(id(3, 9, 0))));
        assert_eq!(member(index_order(id(3, 9, 4))), m(9, 4));
        // ... and so are the legs of 256 consecutive operations of one kind ...
        assert_eq!(
            group_key(index_order(id(3, 0x100, 0))),
            group_key(index_order(id(3, 0x1FF, 9)))
        );
        assert!(same_group(index_order(id(3, 0x100, 0)), index_order(id(3, 0x1FF, 9))));
        assert!(!same_group(index_order(id(3, 0xFF, 0)), index_order(id(3, 0x100, 0))));
        // ... groups of other kinds differ, and a later stretch of operations sorts after
        // every kind.
        assert_ne!(group_key(index_order(id(3, 9, 0))), group_key(index_order(id(2, 9, 0))));
        assert!(index_order(id(0, 0x100, 0)) > index_order(id(255, 0xFF, 255)));
        // No two ids share a place, and the order keeps every bit.
        assert_ne!(index_order(id(1, 2, 3)), index_order(id(3, 2, 1)));
        assert_eq!(index_order(u128::MAX), u128::MAX);
        assert_eq!(index_order(1 << 120), 1 << 16);
        assert_eq!(index_order(1 << 16), 1 << 24);
    }

    proptest::proptest! {
        #[test]
        fn any_members_come_back_and_merge(
            a in proptest::collection::btree_map(proptest::prelude::any::<Member>(), 0u64..8, 0..60),
            b in proptest::collection::btree_map(proptest::prelude::any::<Member>(), 0u64..8, 0..60),
            jumps in proptest::prelude::any::<bool>(),
        ) {
            // Timestamps mostly one after another, as a chain's legs are; or anywhere.
            let members = |m: &std::collections::BTreeMap<Member, u64>| -> Vec<(Member, u64)> {
                m.iter()
                    .map(|(&k, &jump)| {
                        let base = if jumps { u64::MAX / 8 * jump } else { 1_000 + u64::from(k) };
                        (k, base + jump / 6)
                    })
                    .collect()
            };
            let (a, b) = (members(&a), members(&b));
            let bytes = encoded(&a);
            proptest::prop_assert_eq!(valid(&bytes), !a.is_empty());
            for &(k, ts) in &a {
                proptest::prop_assert_eq!(find(&bytes, k), Some(ts));
                for absent in [k.wrapping_add(1), k.wrapping_sub(1)] {
                    let want = a.iter().find(|e| e.0 == absent).map(|e| e.1);
                    proptest::prop_assert_eq!(find(&bytes, absent), want);
                }
            }
            if a.is_empty() {
                return Ok(());
            }
            let mut merged = b.clone();
            merge(&bytes, &mut merged);
            let mut want = b.clone();
            want.extend(a.iter().filter(|e| !b.iter().any(|x| x.0 == e.0)));
            want.sort_unstable();
            proptest::prop_assert_eq!(&merged, &want);
            let again = encoded(&merged);
            proptest::prop_assert!(valid(&again));
        }

        #[test]
        fn any_bytes_that_are_valid_are_what_encode_writes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            if valid(&bytes) {
                let members: Vec<(Member, u64)> = runs(&bytes)
                    .map(Result::unwrap)
                    .flat_map(|(first, after, ts)| {
                        (0..=after).map(move |k| (first + k, ts.wrapping_add(u64::from(k))))
                    })
                    .collect();
                proptest::prop_assert_eq!(encoded(&members), bytes);
            }
        }
    }

    #[test]
    fn entries_that_are_not_runs_are_refused() {
        assert!(!valid(&[]));
        // A timestamp cut short; a varint cut short.
        assert!(!valid(&[0; 9]));
        assert!(!valid(&[0x80]));
        assert!(valid(&[0; 10]));
        // A second run that goes on from the first: not the one encoding.
        assert!(!valid(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]));
        assert!(valid(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]));
        // A member past the last.
        assert!(!valid(&[0xFF, 0xFF, 0x03, 1, 0, 0, 0, 0, 0, 0, 0, 0]));
    }
}
