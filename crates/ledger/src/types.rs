//! Accounts, transfers and their flags: the data of the ledger.

macro_rules! flags {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $flag:ident = $bit:expr, $text:literal;)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub struct $name(pub u16);

        impl $name {
            $($(#[$fmeta])* pub const $flag: $name = $name(1 << $bit);)*
            /// Every defined flag; any other bit is reserved and must be zero.
            pub const ALL: $name = $name(0 $(| (1 << $bit))*);
            /// Each flag with its snake_case name, in bit order.
            pub const NAMES: &'static [($name, &'static str)] = &[$(($name::$flag, $text)),*];

            #[inline]
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }
            #[inline]
            pub fn set(&mut self, other: $name, on: bool) {
                if on { self.0 |= other.0 } else { self.0 &= !other.0 }
            }
            #[inline]
            pub const fn union(self, other: $name) -> $name {
                $name(self.0 | other.0)
            }
            /// True when a bit outside `ALL` is set.
            #[inline]
            pub const fn has_reserved(self) -> bool {
                self.0 & !Self::ALL.0 != 0
            }
            /// The flag of a snake_case name.
            pub fn from_name(name: &str) -> Option<$name> {
                Self::NAMES.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
            }
            /// The snake_case names of the flags set, in bit order.
            pub fn names(self) -> impl Iterator<Item = &'static str> {
                Self::NAMES.iter().filter(move |(f, _)| self.contains(*f)).map(|(_, n)| *n)
            }
        }

        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name { self.union(rhs) }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_list().entries(self.names()).finish()
            }
        }
    };
}

flags! {
    /// Flags of an account.
    AccountFlags {
        /// Links this event with the next one in the batch: the chain succeeds or fails together.
        LINKED = 0, "linked";
        /// debits_pending + debits_posted may never exceed credits_posted.
        DEBITS_MUST_NOT_EXCEED_CREDITS = 1, "debits_must_not_exceed_credits";
        /// credits_pending + credits_posted may never exceed debits_posted.
        CREDITS_MUST_NOT_EXCEED_DEBITS = 2, "credits_must_not_exceed_debits";
        /// Keep the balance after every transfer (for balance history queries).
        HISTORY = 3, "history";
        /// The event carries its own timestamp (bulk import of history).
        IMPORTED = 4, "imported";
        /// No transfer may move money in or out (set by a closing transfer, or at creation).
        CLOSED = 5, "closed";
    }
}

flags! {
    /// Flags of a transfer.
    TransferFlags {
        /// Links this event with the next one in the batch: the chain succeeds or fails together.
        LINKED = 0, "linked";
        /// A two-phase hold: the amount goes to the pending balances until posted or voided.
        PENDING = 1, "pending";
        /// Posts (all or part of) the pending transfer named by pending_id.
        POST_PENDING_TRANSFER = 2, "post_pending_transfer";
        /// Voids the pending transfer named by pending_id.
        VOID_PENDING_TRANSFER = 3, "void_pending_transfer";
        /// Moves at most what the debit account's balance allows.
        BALANCING_DEBIT = 4, "balancing_debit";
        /// Moves at most what the credit account's balance allows.
        BALANCING_CREDIT = 5, "balancing_credit";
        /// Closes the debit account (pending only; voiding reopens it).
        CLOSING_DEBIT = 6, "closing_debit";
        /// Closes the credit account (pending only; voiding reopens it).
        CLOSING_CREDIT = 7, "closing_credit";
        /// The event carries its own timestamp (bulk import of history).
        IMPORTED = 8, "imported";
    }
}

/// An account: the four balances of one party in one ledger (currency).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub id: u128,
    pub debits_pending: u128,
    pub debits_posted: u128,
    pub credits_pending: u128,
    pub credits_posted: u128,
    pub user_data_128: u128,
    pub user_data_64: u64,
    pub user_data_32: u32,
    /// Must be zero.
    pub reserved: u32,
    /// The currency (or unit of value); money only moves between accounts of one ledger.
    pub ledger: u32,
    /// The kind of account in the chart of accounts.
    pub code: u16,
    pub flags: AccountFlags,
    /// Assigned by the ledger when created (nanoseconds, unique, increasing).
    pub timestamp: u64,
}

impl Account {
    /// Would a further debit of `amount` break `debits_must_not_exceed_credits`?
    #[inline]
    pub fn debits_exceed_credits(&self, amount: u128) -> bool {
        self.flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            && self.debits_pending + self.debits_posted + amount > self.credits_posted
    }

    /// Would a further credit of `amount` break `credits_must_not_exceed_debits`?
    #[inline]
    pub fn credits_exceed_debits(&self, amount: u128) -> bool {
        self.flags.contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
            && self.credits_pending + self.credits_posted + amount > self.debits_posted
    }
}

/// A transfer: `amount` moves from the debit account to the credit account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfer {
    pub id: u128,
    pub debit_account_id: u128,
    pub credit_account_id: u128,
    pub amount: u128,
    /// For a post or void: the id of the pending transfer.
    pub pending_id: u128,
    pub user_data_128: u128,
    pub user_data_64: u64,
    pub user_data_32: u32,
    /// Seconds after which a pending transfer expires; zero for never.
    pub timeout: u32,
    pub ledger: u32,
    /// The reason for the transfer in the chart of accounts.
    pub code: u16,
    pub flags: TransferFlags,
    /// Assigned by the ledger when created (nanoseconds, unique, increasing).
    pub timestamp: u64,
}

impl Transfer {
    /// The timeout in nanoseconds (cannot overflow: u32::MAX seconds fit in 63 bits).
    #[inline]
    pub fn timeout_ns(&self) -> u64 {
        u64::from(self.timeout) * crate::constants::NS_PER_S
    }
}

/// What became of a pending transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingStatus {
    Pending = 1,
    Posted = 2,
    Voided = 3,
    Expired = 4,
}

impl PendingStatus {
    pub fn from_u8(value: u8) -> Option<PendingStatus> {
        match value {
            1 => Some(PendingStatus::Pending),
            2 => Some(PendingStatus::Posted),
            3 => Some(PendingStatus::Voided),
            4 => Some(PendingStatus::Expired),
            _ => None,
        }
    }
}

/// A transfer as the history store keeps it once it has left memory: its fields, and for a
/// pending transfer what became of it (a transfer leaves memory only once that is settled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColdTransfer {
    pub transfer: Transfer,
    pub pending: Option<PendingStatus>,
}

/// Which transfers of one account a query returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountFilter {
    pub account_id: u128,
    /// Zero matches any.
    pub user_data_128: u128,
    /// Zero matches any.
    pub user_data_64: u64,
    /// Zero matches any.
    pub user_data_32: u32,
    /// Zero matches any.
    pub code: u16,
    /// Inclusive; zero for no lower bound.
    pub timestamp_min: u64,
    /// Inclusive; zero for no upper bound.
    pub timestamp_max: u64,
    /// At most this many results (at most `QUERY_LIMIT_MAX`).
    pub limit: u32,
    /// Include transfers that debit the account.
    pub debits: bool,
    /// Include transfers that credit the account.
    pub credits: bool,
    /// Newest first instead of oldest first.
    pub reversed: bool,
}

impl AccountFilter {
    /// All transfers of an account, oldest first, up to `limit`.
    pub fn all(account_id: u128, limit: u32) -> AccountFilter {
        AccountFilter {
            account_id,
            user_data_128: 0,
            user_data_64: 0,
            user_data_32: 0,
            code: 0,
            timestamp_min: 0,
            timestamp_max: 0,
            limit,
            debits: true,
            credits: true,
            reversed: false,
        }
    }

    /// Whether the filter can match anything: a limit, a side, and valid timestamp bounds (a
    /// bound past `TIMESTAMP_MAX` makes the whole filter invalid, as in the reference model).
    pub fn is_valid(&self) -> bool {
        use crate::constants::TIMESTAMP_MAX;
        self.limit > 0
            && (self.debits || self.credits)
            && (self.timestamp_max == 0 || self.timestamp_min <= self.timestamp_max)
            && self.timestamp_min <= TIMESTAMP_MAX
            && self.timestamp_max <= TIMESTAMP_MAX
    }

    /// Whether `t` (a transfer of any account) passes the filter, timestamp bounds included.
    #[inline]
    pub fn matches(&self, t: &Transfer) -> bool {
        ((self.debits && t.debit_account_id == self.account_id)
            || (self.credits && t.credit_account_id == self.account_id))
            && t.timestamp >= self.timestamp_min
            && (self.timestamp_max == 0 || t.timestamp <= self.timestamp_max)
            && (self.user_data_128 == 0 || t.user_data_128 == self.user_data_128)
            && (self.user_data_64 == 0 || t.user_data_64 == self.user_data_64)
            && (self.user_data_32 == 0 || t.user_data_32 == self.user_data_32)
            && (self.code == 0 || t.code == self.code)
    }
}
