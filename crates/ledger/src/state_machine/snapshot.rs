//! The ledger's snapshot: the whole state of a `StateMachine` (accounts, the transfers held in
//! memory, pending statuses, the ids of failed transfers), written at a checkpoint and read back
//! at recovery with every index rebuilt.

use std::io::{self, Read, Write};

use super::{id_at, StateMachine, Totals};
use crate::codec;
use crate::constants::{EVENT_SIZE, SNAPSHOT_COUNT_MAX, SNAPSHOT_RESERVE_MIN, TIMESTAMP_MAX};
use crate::log::TransferLog;
use crate::types::{Account, PendingStatus, Transfer};

impl StateMachine {
    /// Writes the whole state. Indexes are rebuilt on read, so only the data is written.
    ///
    /// First adds up every account's balances afresh and stops the process if they differ from
    /// the running sums or do not balance: a checkpoint reads every account anyway, and a state
    /// that is wrong must not be written where recovery would start from it.
    pub fn write_snapshot(&self, w: &mut impl Write) -> io::Result<()> {
        let added = Totals::of(&self.accounts);
        assert!(
            added == self.totals && added.is_balanced(),
            "debits and credits diverged: the accounts add up to {added:?}, the running sums \
             after the last batch are {:?}",
            self.totals
        );
        let mut buf = [0u8; EVENT_SIZE];
        w.write_all(SNAPSHOT_MAGIC)?;
        w.write_all(&self.commit_timestamp.to_le_bytes())?;
        w.write_all(&self.prepare_timestamp.to_le_bytes())?;
        w.write_all(&(self.accounts.len() as u64).to_le_bytes())?;
        for a in &self.accounts {
            codec::encode_account(a, &mut buf);
            w.write_all(&buf)?;
        }
        w.write_all(&self.horizon.to_le_bytes())?;
        w.write_all(&u64::from(self.transfers.chunk_len().trailing_zeros()).to_le_bytes())?;
        w.write_all(&(self.transfers.base() as u64).to_le_bytes())?;
        w.write_all(&(self.transfers.held() as u64).to_le_bytes())?;
        for t in self.transfers.iter() {
            codec::encode_transfer(t, &mut buf);
            w.write_all(&buf)?;
        }
        let mut pinned: Vec<(u32, &Transfer)> = self.pinned.iter().map(|(&i, t)| (i, t)).collect();
        pinned.sort_unstable_by_key(|&(i, _)| i);
        w.write_all(&(pinned.len() as u64).to_le_bytes())?;
        for (position, t) in pinned {
            w.write_all(&position.to_le_bytes())?;
            codec::encode_transfer(t, &mut buf);
            w.write_all(&buf)?;
        }
        // Pending statuses in transfer order, so the snapshot bytes are deterministic.
        let mut pending: Vec<(u32, PendingStatus)> =
            self.pending.iter().map(|(&i, &s)| (i, s)).collect();
        pending.sort_unstable_by_key(|&(i, _)| i);
        w.write_all(&(pending.len() as u64).to_le_bytes())?;
        for (index, status) in pending {
            w.write_all(&index.to_le_bytes())?;
            w.write_all(&[status as u8])?;
        }
        let mut orphaned: Vec<u128> = self.orphaned.iter().copied().collect();
        orphaned.sort_unstable();
        w.write_all(&(orphaned.len() as u64).to_le_bytes())?;
        for id in orphaned {
            w.write_all(&id.to_le_bytes())?;
        }
        Ok(())
    }

    /// Reads a state written by `write_snapshot`, rebuilding every index.
    ///
    /// The counts in the file are not trusted for memory: the reader cannot tell how many bytes
    /// follow (the checksum is verified after decoding), so room is made as entries are read,
    /// never for more than have been read already (see `reserve_ahead`), and a count larger
    /// than the file holds ends in an `InvalidData` error that names it, not in an allocation
    /// that aborts the process.
    pub fn read_snapshot(r: &mut impl Read) -> io::Result<StateMachine> {
        fn bad(what: &str) -> io::Error {
            io::Error::new(io::ErrorKind::InvalidData, format!("snapshot: {what}"))
        }
        fn u64_of(r: &mut impl Read) -> io::Result<u64> {
            let mut b = [0u8; 8];
            r.read_exact(&mut b)?;
            Ok(u64::from_le_bytes(b))
        }
        /// A count of entries, each a position or at a position: at most `u32::MAX` + 1.
        fn count_of(r: &mut impl Read, what: &str) -> io::Result<usize> {
            let count = u64_of(r)?;
            usize::try_from(count)
                .ok()
                .filter(|&n| n <= SNAPSHOT_COUNT_MAX)
                .ok_or_else(|| bad(&format!("{count} {what}: more than a ledger can hold")))
        }
        /// The error of a file that ends before the `count` entries it announced.
        fn cut(
            what: &'static str,
            count: usize,
            read: usize,
        ) -> impl FnOnce(io::Error) -> io::Error {
            move |e| match e.kind() {
                io::ErrorKind::UnexpectedEof => {
                    bad(&format!("{count} {what} announced, the file ends after {read} of them"))
                }
                _ => e,
            }
        }
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic != SNAPSHOT_MAGIC {
            return Err(bad("bad magic"));
        }
        let mut sm = StateMachine {
            commit_timestamp: u64_of(r)?,
            prepare_timestamp: u64_of(r)?,
            ..StateMachine::default()
        };
        let mut buf = [0u8; EVENT_SIZE];
        let accounts = count_of(r, "accounts")?;
        for index in 0..accounts {
            if index == sm.accounts.capacity() {
                let more = reserve_ahead(index, accounts);
                sm.accounts.reserve_exact(more);
                sm.account_index.reserve(more);
                sm.account_transfers.reserve_exact(more);
            }
            r.read_exact(&mut buf).map_err(cut("accounts", accounts, index))?;
            let a = codec::decode_account(&buf);
            let index = u32::try_from(index).map_err(|_| bad("too many accounts"))?;
            if sm.account_index.insert(a.id, index).is_some() {
                return Err(bad("duplicate account id"));
            }
            sm.totals.account_changed(&Account::default(), &a);
            sm.accounts.push(a);
            sm.account_transfers.push(Vec::new());
        }
        sm.horizon = u64_of(r)?;
        let chunk_shift = u32::try_from(u64_of(r)?).map_err(|_| bad("chunk shift"))?;
        if !(1..=24).contains(&chunk_shift) {
            return Err(bad("chunk shift"));
        }
        let base = count_of(r, "transfers before the log")?;
        if !base.is_multiple_of(1 << chunk_shift) {
            return Err(bad("log base is not a whole number of chunks"));
        }
        sm.transfers = TransferLog::starting_at(chunk_shift, base);
        let transfers = count_of(r, "transfers")?;
        if base + transfers > SNAPSHOT_COUNT_MAX {
            return Err(bad(&format!(
                "{base} + {transfers} transfers: more than a ledger can hold"
            )));
        }
        let mut reserved = 0;
        for (read, index) in (base..base + transfers).enumerate() {
            if read == reserved {
                let more = reserve_ahead(read, transfers);
                sm.transfer_index.reserve(more);
                reserved += more;
            }
            r.read_exact(&mut buf).map_err(cut("transfers", transfers, read))?;
            let t = codec::decode_transfer(&buf);
            let index = u32::try_from(index).map_err(|_| bad("too many transfers"))?;
            if sm.transfer_find(t.id).is_some() {
                return Err(bad("duplicate transfer id"));
            }
            for account_id in [t.debit_account_id, t.credit_account_id] {
                let a = *sm.account_index.get(&account_id).ok_or_else(|| bad("unknown account"))?;
                sm.account_transfers[a as usize].push(index);
            }
            sm.transfer_push(t);
        }
        // Each pinned transfer is at a position before the log, so there are at most `base`.
        let pinned = count_of(r, "pinned transfers")?;
        if pinned > base {
            return Err(bad(&format!("{pinned} pinned transfers, but {base} before the log")));
        }
        for read in 0..pinned {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(cut("pinned transfers", pinned, read))?;
            let position = u32::from_le_bytes(b);
            r.read_exact(&mut buf).map_err(cut("pinned transfers", pinned, read))?;
            let t = codec::decode_transfer(&buf);
            if position as usize >= base || sm.transfer_find(t.id).is_some() {
                return Err(bad("bad pinned transfer"));
            }
            sm.pinned.insert(position, t);
            let (transfers, pinned) = (&sm.transfers, &sm.pinned);
            sm.transfer_index.insert(t.id, position, |i| id_at(transfers, pinned, i));
        }
        // Each status is that of a different transfer held.
        let pending = count_of(r, "pending statuses")?;
        if pending > transfers + pinned {
            return Err(bad(&format!(
                "{pending} pending statuses, but {} transfers held",
                transfers + pinned
            )));
        }
        for read in 0..pending {
            if read == sm.pending.capacity() {
                sm.pending.reserve(reserve_ahead(read, pending));
            }
            let mut b = [0u8; 5];
            r.read_exact(&mut b).map_err(cut("pending statuses", pending, read))?;
            let index = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let status = PendingStatus::from_u8(b[4]).ok_or_else(|| bad("bad pending status"))?;
            let t = sm
                .transfers
                .get(index as usize)
                .or_else(|| sm.pinned.get(&index))
                .ok_or_else(|| bad("bad pending index"))?;
            if status == PendingStatus::Pending && t.timeout > 0 {
                // A transfer created here never has its timeout past TIMESTAMP_MAX; one read
                // with it is damaged, not a reason to overflow.
                let at = t
                    .timestamp
                    .checked_add(t.timeout_ns())
                    .filter(|&at| at <= TIMESTAMP_MAX)
                    .ok_or_else(|| bad("pending transfer times out past the last timestamp"))?;
                sm.expiry.insert((at, index));
            }
            sm.pending.insert(index, status);
        }
        let orphaned = u64_of(r)?;
        let orphaned = usize::try_from(orphaned)
            .map_err(|_| bad(&format!("{orphaned} failed transfer ids: count too large")))?;
        for read in 0..orphaned {
            if read == sm.orphaned.capacity() {
                sm.orphaned.reserve(reserve_ahead(read, orphaned));
            }
            let mut b = [0u8; 16];
            r.read_exact(&mut b).map_err(cut("failed transfer ids", orphaned, read))?;
            sm.orphaned.insert(u128::from_le_bytes(b));
        }
        if !sm.totals.is_balanced() {
            return Err(bad("debits and credits differ"));
        }
        Ok(sm)
    }
}

/// How many more entries to make room for when `read` of `count` entries announced by a
/// snapshot have been read and the room is used up: no more than have been read already (at
/// least `SNAPSHOT_RESERVE_MIN`), so the memory taken grows only with the bytes the file really
/// holds, and a corrupt count fails at the end of the file instead of in an allocation; the
/// last step takes exactly what is left, so a whole snapshot ends with the room it needs.
fn reserve_ahead(read: usize, count: usize) -> usize {
    (count - read).min(read.max(SNAPSHOT_RESERVE_MIN))
}

const SNAPSHOT_MAGIC: &[u8; 8] = b"HFLEDG02";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_machine::tests::{empty_batch, ledger};

    #[test]
    #[should_panic(expected = "the accounts add up to")]
    fn a_balance_changed_without_being_counted_stops_the_checkpoint() {
        let mut sm = ledger();
        // Past the running sums, which then still balance: only adding up the accounts sees it.
        sm.accounts[1].credits_posted += 1;
        empty_batch(&mut sm);
        sm.write_snapshot(&mut Vec::new()).unwrap();
    }

    #[test]
    fn a_snapshot_whose_accounts_do_not_balance_is_refused() {
        let sm = ledger();
        let mut bytes = Vec::new();
        sm.write_snapshot(&mut bytes).unwrap();
        // The second account's credits_posted, after the magic, two timestamps, the count and
        // the first account.
        let account = 8 + 8 + 8 + 8 + EVENT_SIZE;
        let mut encoded = [0u8; EVENT_SIZE];
        encoded.copy_from_slice(&bytes[account..account + EVENT_SIZE]);
        let mut a = codec::decode_account(&encoded);
        a.credits_posted += 1;
        codec::encode_account(&a, &mut encoded);
        bytes[account..account + EVENT_SIZE].copy_from_slice(&encoded);
        let error = StateMachine::read_snapshot(&mut &bytes[..]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("debits and credits differ"), "{error}");
    }

    /// The error reading `bytes` as a snapshot gives, which must say the data is invalid.
    fn refused(bytes: &[u8]) -> String {
        let error = StateMachine::read_snapshot(&mut &bytes[..]).expect_err("refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        error.to_string()
    }

    #[test]
    fn a_snapshot_count_larger_than_its_bytes_is_refused_without_allocating_for_it() {
        let mut bytes = Vec::new();
        ledger().write_snapshot(&mut bytes).unwrap();
        let count_at = |bytes: &mut Vec<u8>, at: usize, count: u64| {
            bytes[at..at + 8].copy_from_slice(&count.to_le_bytes());
        };
        // The accounts' count, after the magic and two timestamps.
        let accounts = 24;
        let mut cut = bytes[..accounts + 8].to_vec();
        count_at(&mut cut, accounts, u64::MAX);
        assert!(refused(&cut).contains("accounts: more than a ledger can hold"));
        count_at(&mut cut, accounts, u64::from(u32::MAX));
        let message = refused(&cut);
        assert!(message.contains("4294967295 accounts announced, the file ends after 0"));
        // The transfers' count, after the accounts, the horizon, the chunk shift and the base;
        // the file ends after the two transfers there are.
        let transfers = accounts + 8 + 2 * EVENT_SIZE + 3 * 8;
        let mut cut = bytes[..transfers + 8 + 2 * EVENT_SIZE].to_vec();
        count_at(&mut cut, transfers, 1 << 31);
        let message = refused(&cut);
        assert!(message.contains("2147483648 transfers announced, the file ends after 2"));
        // The failed ids' count, last.
        let mut huge = bytes.clone();
        let orphaned = huge.len() - 8;
        count_at(&mut huge, orphaned, u64::MAX);
        let message = refused(&huge);
        assert!(message.contains("failed transfer ids announced, the file ends after 0"));
        // Pending statuses: more than there are transfers is corrupt at once.
        let pending = orphaned - 8 - 5;
        assert_eq!(u64::from_le_bytes(bytes[pending..pending + 8].try_into().unwrap()), 1);
        let mut many = bytes.clone();
        count_at(&mut many, pending, 3);
        assert!(refused(&many).contains("3 pending statuses, but 2 transfers held"));
    }
}
