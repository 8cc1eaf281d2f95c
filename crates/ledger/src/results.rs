//! Result codes of `create_accounts` and `create_transfers`.
//!
//! Names and numbers follow the reference ledger model, so a client can map them one to one.
//! Each failing code leaves the ledger unchanged. The enum order is the precedence of the checks.

macro_rules! results {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:expr, $text:literal;)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum $name {
            $($variant = $code,)*
        }

        impl $name {
            /// Every result, in order of precedence.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The snake_case name, as clients see it.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The numeric code of the reference model (0 for created).
            pub const fn code(self) -> u32 {
                self as u32
            }

            /// The result of a snake_case name.
            pub fn from_name(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// The result of a numeric code.
            pub fn from_code(code: u32) -> Option<$name> {
                match code {
                    $($code => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

results! {
    /// The outcome of creating one account.
    CreateAccountResult {
        Created = 0, "created";
        LinkedEventFailed = 1, "linked_event_failed";
        LinkedEventChainOpen = 2, "linked_event_chain_open";
        ImportedEventExpected = 22, "imported_event_expected";
        ImportedEventNotExpected = 23, "imported_event_not_expected";
        TimestampMustBeZero = 3, "timestamp_must_be_zero";
        ImportedEventTimestampOutOfRange = 24, "imported_event_timestamp_out_of_range";
        ImportedEventTimestampMustNotAdvance = 25, "imported_event_timestamp_must_not_advance";
        ReservedField = 4, "reserved_field";
        ReservedFlag = 5, "reserved_flag";
        IdMustNotBeZero = 6, "id_must_not_be_zero";
        IdMustNotBeIntMax = 7, "id_must_not_be_int_max";
        ExistsWithDifferentFlags = 15, "exists_with_different_flags";
        ExistsWithDifferentUserData128 = 16, "exists_with_different_user_data_128";
        ExistsWithDifferentUserData64 = 17, "exists_with_different_user_data_64";
        ExistsWithDifferentUserData32 = 18, "exists_with_different_user_data_32";
        ExistsWithDifferentLedger = 19, "exists_with_different_ledger";
        ExistsWithDifferentCode = 20, "exists_with_different_code";
        Exists = 21, "exists";
        FlagsAreMutuallyExclusive = 8, "flags_are_mutually_exclusive";
        DebitsPendingMustBeZero = 9, "debits_pending_must_be_zero";
        DebitsPostedMustBeZero = 10, "debits_posted_must_be_zero";
        CreditsPendingMustBeZero = 11, "credits_pending_must_be_zero";
        CreditsPostedMustBeZero = 12, "credits_posted_must_be_zero";
        LedgerMustNotBeZero = 13, "ledger_must_not_be_zero";
        CodeMustNotBeZero = 14, "code_must_not_be_zero";
        ImportedEventTimestampMustNotRegress = 26, "imported_event_timestamp_must_not_regress";
    }
}

results! {
    /// The outcome of creating one transfer.
    CreateTransferResult {
        Created = 0, "created";
        LinkedEventFailed = 1, "linked_event_failed";
        LinkedEventChainOpen = 2, "linked_event_chain_open";
        ImportedEventExpected = 56, "imported_event_expected";
        ImportedEventNotExpected = 57, "imported_event_not_expected";
        TimestampMustBeZero = 3, "timestamp_must_be_zero";
        ImportedEventTimestampOutOfRange = 58, "imported_event_timestamp_out_of_range";
        ImportedEventTimestampMustNotAdvance = 59, "imported_event_timestamp_must_not_advance";
        ReservedFlag = 4, "reserved_flag";
        IdMustNotBeZero = 5, "id_must_not_be_zero";
        IdMustNotBeIntMax = 6, "id_must_not_be_int_max";
        ExistsWithDifferentFlags = 36, "exists_with_different_flags";
        ExistsWithDifferentPendingId = 40, "exists_with_different_pending_id";
        ExistsWithDifferentTimeout = 44, "exists_with_different_timeout";
        ExistsWithDifferentDebitAccountId = 37, "exists_with_different_debit_account_id";
        ExistsWithDifferentCreditAccountId = 38, "exists_with_different_credit_account_id";
        ExistsWithDifferentAmount = 39, "exists_with_different_amount";
        ExistsWithDifferentUserData128 = 41, "exists_with_different_user_data_128";
        ExistsWithDifferentUserData64 = 42, "exists_with_different_user_data_64";
        ExistsWithDifferentUserData32 = 43, "exists_with_different_user_data_32";
        ExistsWithDifferentLedger = 67, "exists_with_different_ledger";
        ExistsWithDifferentCode = 45, "exists_with_different_code";
        Exists = 46, "exists";
        IdAlreadyFailed = 68, "id_already_failed";
        FlagsAreMutuallyExclusive = 7, "flags_are_mutually_exclusive";
        DebitAccountIdMustNotBeZero = 8, "debit_account_id_must_not_be_zero";
        DebitAccountIdMustNotBeIntMax = 9, "debit_account_id_must_not_be_int_max";
        CreditAccountIdMustNotBeZero = 10, "credit_account_id_must_not_be_zero";
        CreditAccountIdMustNotBeIntMax = 11, "credit_account_id_must_not_be_int_max";
        AccountsMustBeDifferent = 12, "accounts_must_be_different";
        PendingIdMustBeZero = 13, "pending_id_must_be_zero";
        PendingIdMustNotBeZero = 14, "pending_id_must_not_be_zero";
        PendingIdMustNotBeIntMax = 15, "pending_id_must_not_be_int_max";
        PendingIdMustBeDifferent = 16, "pending_id_must_be_different";
        TimeoutReservedForPendingTransfer = 17, "timeout_reserved_for_pending_transfer";
        ClosingTransferMustBePending = 64, "closing_transfer_must_be_pending";
        LedgerMustNotBeZero = 19, "ledger_must_not_be_zero";
        CodeMustNotBeZero = 20, "code_must_not_be_zero";
        DebitAccountNotFound = 21, "debit_account_not_found";
        CreditAccountNotFound = 22, "credit_account_not_found";
        AccountsMustHaveTheSameLedger = 23, "accounts_must_have_the_same_ledger";
        TransferMustHaveTheSameLedgerAsAccounts = 24, "transfer_must_have_the_same_ledger_as_accounts";
        PendingTransferNotFound = 25, "pending_transfer_not_found";
        PendingTransferNotPending = 26, "pending_transfer_not_pending";
        PendingTransferHasDifferentDebitAccountId = 27, "pending_transfer_has_different_debit_account_id";
        PendingTransferHasDifferentCreditAccountId = 28, "pending_transfer_has_different_credit_account_id";
        PendingTransferHasDifferentLedger = 29, "pending_transfer_has_different_ledger";
        PendingTransferHasDifferentCode = 30, "pending_transfer_has_different_code";
        ExceedsPendingTransferAmount = 31, "exceeds_pending_transfer_amount";
        PendingTransferHasDifferentAmount = 32, "pending_transfer_has_different_amount";
        PendingTransferAlreadyPosted = 33, "pending_transfer_already_posted";
        PendingTransferAlreadyVoided = 34, "pending_transfer_already_voided";
        PendingTransferExpired = 35, "pending_transfer_expired";
        ImportedEventTimestampMustNotRegress = 60, "imported_event_timestamp_must_not_regress";
        ImportedEventTimestampMustPostdateDebitAccount = 61, "imported_event_timestamp_must_postdate_debit_account";
        ImportedEventTimestampMustPostdateCreditAccount = 62, "imported_event_timestamp_must_postdate_credit_account";
        ImportedEventTimeoutMustBeZero = 63, "imported_event_timeout_must_be_zero";
        DebitAccountAlreadyClosed = 65, "debit_account_already_closed";
        CreditAccountAlreadyClosed = 66, "credit_account_already_closed";
        OverflowsDebitsPending = 47, "overflows_debits_pending";
        OverflowsCreditsPending = 48, "overflows_credits_pending";
        OverflowsDebitsPosted = 49, "overflows_debits_posted";
        OverflowsCreditsPosted = 50, "overflows_credits_posted";
        OverflowsDebits = 51, "overflows_debits";
        OverflowsCredits = 52, "overflows_credits";
        OverflowsTimeout = 53, "overflows_timeout";
        ExceedsCredits = 54, "exceeds_credits";
        ExceedsDebits = 55, "exceeds_debits";
    }
}

impl CreateTransferResult {
    /// A failure that depends on the state of the ledger at the time, so that a retry of the same
    /// transfer could succeed later. The id of a transfer that failed so is burned: a retry gets
    /// `id_already_failed`, which keeps the outcome of an id fixed forever.
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            CreateTransferResult::DebitAccountNotFound
                | CreateTransferResult::CreditAccountNotFound
                | CreateTransferResult::PendingTransferNotFound
                | CreateTransferResult::ExceedsCredits
                | CreateTransferResult::ExceedsDebits
                | CreateTransferResult::DebitAccountAlreadyClosed
                | CreateTransferResult::CreditAccountAlreadyClosed
        )
    }
}
