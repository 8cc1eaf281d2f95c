//! The id index: where a transfer with a given id is, as its timestamp.
//!
//! Ids that differ only in their lowest byte form a group (the payment domain's
//! `tag << 120 | op << 8 | leg`: the legs of one operation), and a group is one entry of the
//! index instead of one per id. A group's members are written as runs, each the first member,
//! how many follow it one by one, and the first one's timestamp: a chain of legs has
//! consecutive ids and consecutive timestamps, so an operation's legs take one run under one
//! key. A run is 10 bytes, or 9 when it is the entry's first and starts at member 0 (an
//! operation's first leg): the member is not written, and an entry whose length leaves 9 over
//! whole runs starts that way. Any other ids work the same, a run per member at worst.
//!
//! A lookup reads the one key of the id's group. A group whose members leave memory in two
//! puts (an operation cut by the end of a put, or a leg pending longer than the rest) is
//! merged with what the index holds by the thread writing the second, so the entry always
//! holds every member written so far.
//!
//! The key is the id with its top byte (the kind of operation in the payment domain) moved
//! below the operation and above the member: ids that name what made them in their top byte
//! and count up below it would otherwise keep one stretch of the index per kind, and every
//! batch moved out would land inside each of them, overlapping the whole index at every
//! level; in this order the groups of one stretch of time are together and newer than the
//! rest, so a batch moved out overlaps little and compaction can move tables down instead.
//! The key leaves out the member byte, which is the same (zero) for every group: 15 bytes.

/// Bytes of a run: the first member, the count of members after it, the first timestamp
/// (big-endian).
pub(crate) const RUN_BYTES: usize = 10;

/// Bytes of an entry's first run when it starts at member 0, which is then not written.
pub(crate) const FIRST_RUN_BYTES: usize = RUN_BYTES - 1;

/// Bytes of a group's key.
pub(crate) const GROUP_KEY_BYTES: usize = 15;

/// The id's place in the index: bits 8 to 119, then the top byte, then the lowest byte. Ids of
/// a group are neighbours (they differ only in the last byte), in member order.
pub(crate) fn index_order(id: u128) -> u128 {
    ((id << 8) & !0xFFFF) | ((id >> 120) << 8) | (id & 0xFF)
}

/// The index key of the group of an id in `index_order`: its bits above the member.
pub(crate) fn group_key(ordered: u128) -> [u8; GROUP_KEY_BYTES] {
    let bytes = ordered.to_be_bytes();
    bytes[..GROUP_KEY_BYTES].try_into().expect("fifteen bytes")
}

/// A group's member of an id in `index_order`.
pub(crate) fn member(ordered: u128) -> u8 {
    // The lowest byte: truncation is the point.
    ordered as u8
}

/// Appends the runs of `members` (by member, each at most once) to `out`.
pub(crate) fn encode(members: &[(u8, u64)], out: &mut Vec<u8>) {
    debug_assert!(members.windows(2).all(|w| w[0].0 < w[1].0));
    let mut rest = members;
    while let Some(&(first, timestamp)) = rest.first() {
        let mut n = 1;
        while n < rest.len()
            && u64::from(rest[n].0) == u64::from(first) + n as u64
            && rest[n].1 == timestamp.wrapping_add(n as u64)
        {
            n += 1;
        }
        if first != 0 || rest.len() != members.len() {
            out.push(first);
        }
        // At most 255 follow the first: members are bytes.
        out.push((n - 1) as u8);
        out.extend_from_slice(&timestamp.to_be_bytes());
        rest = &rest[n..];
    }
}

/// Whether `bytes` is a whole number of runs, in the one way `encode` writes them (a first
/// run at member 0 without its member).
pub(crate) fn valid(bytes: &[u8]) -> bool {
    match bytes.len() % RUN_BYTES {
        FIRST_RUN_BYTES => true,
        0 => bytes.first().is_some_and(|&first| first != 0),
        _ => false,
    }
}

/// The runs of a `valid` entry: first member, how many follow it, first timestamp.
fn runs(bytes: &[u8]) -> impl Iterator<Item = (u8, u8, u64)> + '_ {
    let timestamp = |b: &[u8]| u64::from_be_bytes(b.try_into().expect("eight bytes"));
    let (first, rest) = if bytes.len() % RUN_BYTES == FIRST_RUN_BYTES {
        let (run, rest) = bytes.split_at(FIRST_RUN_BYTES);
        (Some((0, run[0], timestamp(&run[1..]))), rest)
    } else {
        (None, bytes)
    };
    first
        .into_iter()
        .chain(rest.chunks_exact(RUN_BYTES).map(move |run| (run[0], run[1], timestamp(&run[2..]))))
}

/// The timestamp of `member` in a group's entry (`valid`), if the group has it.
pub(crate) fn find(bytes: &[u8], member: u8) -> Option<u64> {
    runs(bytes).find_map(|(first, after, timestamp)| {
        let k = member.checked_sub(first)?;
        (k <= after).then(|| timestamp.wrapping_add(u64::from(k)))
    })
}

/// Adds the members of a group's entry (`valid`) that `members` lacks, keeping them in member
/// order. A member in both keeps the timestamp of `members` (they are the same fact: an id is
/// given once, and a put again after a restart writes what was written before).
pub(crate) fn merge(bytes: &[u8], members: &mut Vec<(u8, u64)>) {
    let before = members.len();
    for (first, after, timestamp) in runs(bytes) {
        for k in 0..=after {
            let m = first.wrapping_add(k);
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

    fn encoded(members: &[(u8, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(members, &mut out);
        out
    }

    #[test]
    fn the_legs_of_one_operation_are_one_run() {
        let legs: Vec<(u8, u64)> = (0..5).map(|m| (m, 1_000 + u64::from(m))).collect();
        let bytes = encoded(&legs);
        assert_eq!(bytes.len(), FIRST_RUN_BYTES);
        assert!(valid(&bytes));
        for (m, ts) in legs {
            assert_eq!(find(&bytes, m), Some(ts));
        }
        assert_eq!(find(&bytes, 5), None);
        assert_eq!(find(&bytes, 255), None);
    }

    #[test]
    fn gaps_in_members_or_time_start_a_new_run() {
        // Member 2 missing; member 4 a moment later than the run would say; 255 alone.
        let members = [(0, 10), (1, 11), (3, 13), (4, 20), (255, 7)];
        let bytes = encoded(&members);
        assert_eq!(bytes.len(), FIRST_RUN_BYTES + 3 * RUN_BYTES);
        for (m, ts) in members {
            assert_eq!(find(&bytes, m), Some(ts), "member {m}");
        }
        for m in [2, 5, 254] {
            assert_eq!(find(&bytes, m), None, "member {m}");
        }
    }

    #[test]
    fn a_whole_group_of_256_is_one_run() {
        let members: Vec<(u8, u64)> = (0..=255u8).map(|m| (m, 1 << 40 | u64::from(m))).collect();
        let bytes = encoded(&members);
        assert_eq!(bytes.len(), FIRST_RUN_BYTES);
        assert_eq!(find(&bytes, 255), Some(1 << 40 | 255));
    }

    #[test]
    fn merging_keeps_every_member_once() {
        let stored = encoded(&[(0, 100), (1, 101), (7, 300)]);
        // Member 1 again (written again after a restart), 2 and 3 new.
        let mut members = vec![(1, 101), (2, 102), (3, 103)];
        merge(&stored, &mut members);
        assert_eq!(members, [(0, 100), (1, 101), (2, 102), (3, 103), (7, 300)]);
        let bytes = encoded(&members);
        assert_eq!(bytes.len(), FIRST_RUN_BYTES + RUN_BYTES);
    }

    #[test]
    fn a_group_without_member_0_writes_every_run_whole() {
        let members = [(1, 50), (2, 51), (9, 60)];
        let bytes = encoded(&members);
        assert_eq!(bytes.len(), 2 * RUN_BYTES);
        assert!(valid(&bytes));
        for (m, ts) in members {
            assert_eq!(find(&bytes, m), Some(ts), "member {m}");
        }
        assert_eq!(find(&bytes, 0), None);
    }

    #[test]
    fn the_index_order_keeps_groups_together_and_time_first() {
        let id = |tag: u128, op: u128, leg: u128| tag << 120 | op << 8 | leg;
        // Members of a group are neighbours in member order ...
        assert_eq!(index_order(id(3, 9, 1)), index_order(id(3, 9, 0)) + 1);
        assert_eq!(group_key(index_order(id(3, 9, 4))), group_key(index_order(id(3, 9, 0))));
        assert_eq!(member(index_order(id(3, 9, 4))), 4);
        // ... groups of other kinds differ, and a later operation sorts after every kind.
        assert_ne!(group_key(index_order(id(3, 9, 0))), group_key(index_order(id(2, 9, 0))));
        assert!(index_order(id(0, 10, 0)) > index_order(id(255, 9, 255)));
        // No two ids share a place.
        assert_ne!(index_order(id(1, 2, 3)), index_order(id(3, 2, 1)));
    }

    proptest::proptest! {
        #[test]
        fn any_members_come_back_and_merge(
            a in proptest::collection::btree_map(proptest::prelude::any::<u8>(), 0u64..8, 0..40),
            b in proptest::collection::btree_map(proptest::prelude::any::<u8>(), 0u64..8, 0..40),
        ) {
            // Timestamps mostly one after another, as a chain's legs are.
            let members = |m: &std::collections::BTreeMap<u8, u64>| -> Vec<(u8, u64)> {
                m.iter().map(|(&k, &jump)| (k, 1_000 + u64::from(k) + jump / 6)).collect()
            };
            let (a, b) = (members(&a), members(&b));
            let bytes = encoded(&a);
            proptest::prop_assert_eq!(valid(&bytes), !a.is_empty());
            for m in 0..=255u8 {
                let want = a.iter().find(|e| e.0 == m).map(|e| e.1);
                proptest::prop_assert_eq!(find(&bytes, m), want);
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
    }

    #[test]
    fn entries_that_are_not_runs_are_refused() {
        assert!(!valid(&[]));
        assert!(!valid(&[0; RUN_BYTES + 1]));
        assert!(valid(&[0; FIRST_RUN_BYTES + RUN_BYTES]));
        assert!(valid(&[1; 2 * RUN_BYTES]));
        // A first run at member 0 written whole: not the one encoding.
        assert!(!valid(&[0; 2 * RUN_BYTES]));
    }
}
