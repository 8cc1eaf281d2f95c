//! The cluster's limits and timings.

/// Most nodes a cluster file may name.
pub const NODES_MAX: usize = 9;

/// Largest replication message: a snapshot chunk or a batch of log entries (openraft sends at
/// most `max_payload_entries` entries, each a group of at most a few MiB).
pub const FRAME_BYTES_MAX: u32 = 256 << 20;

/// How long a node tries to connect to another before it counts it unreachable.
pub const CONNECT_TIMEOUT_MS: u64 = 200;

/// Idle connections a node keeps to each other node for the next message.
pub const IDLE_CONNECTIONS_MAX: usize = 8;

/// How long `GET /v1/cluster` waits for each other node's status.
pub const STATUS_TIMEOUT_MS: u64 = 500;

/// The leader's heartbeat, and the election timeout. openraft's followers honour the leader's
/// lease (the longest election timeout) after the last heartbeat before they start their own
/// election timeout, so a dead leader is replaced after 1.5 to 2 times the longest timeout
/// without a heartbeat: 600 to 800 ms here, tuned for a LAN. openraft also takes the
/// heartbeat interval as the time limit of every append round trip (the follower's fsync
/// included) and of the leader's check before a linearizable read: at 50 ms a slow follower
/// stalled every write, so it is not shorter than 100 ms.
pub const HEARTBEAT_INTERVAL_MS: u64 = 100;
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 200;
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 400;

/// A follower stands for election once it has heard no leader for this long and no reachable
/// node has (see elect.rs): just past the leader's lease, which the others honour before they
/// grant a vote.
pub const ELECT_AFTER_MS: u64 = ELECTION_TIMEOUT_MAX_MS + 20;

/// How often the elector looks.
pub const ELECT_CHECK_MS: u64 = 20;

/// How much later a node stands for each reachable node ahead of it (a longer log, or the same
/// log and a lower id), so that one stands at a time and the vote is not split.
pub const ELECT_DEFER_MS: u64 = 100;

/// How long a node that stood waits before it may stand again (its election failed).
pub const ELECT_RETRY_MS: u64 = 300;

/// How long the elector waits for another node's standing; one that does not answer is not
/// counted.
pub const STANDING_TIMEOUT_MS: u64 = 50;

/// A leader that has not heard from a majority for this long (cut off from the others) stops
/// saying it leads: its `/healthz` fails and it refuses requests at once rather than hold them
/// until they time out. The others elect a new leader after about as long.
pub const LEADER_QUORUM_STALE_MS: u64 = ELECTION_TIMEOUT_MAX_MS;

/// How long a node that has no vote on disk (new, or its folder wiped) waits before it takes
/// part in the cluster: twice the longest election timeout, so that any election it may have
/// voted in before it lost its folder has ended.
pub const FORGETFUL_NODE_QUIET_MS: u64 = 2 * ELECTION_TIMEOUT_MAX_MS;

/// A snapshot (a checkpoint) once this many entries were applied since the last one; a node
/// further behind than the log kept catches up from it.
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 20_000;

/// How long `Node::compact` waits for the snapshot it asked for.
pub const SNAPSHOT_TIMEOUT_MS: u64 = 30_000;

/// Most entries in one append message to a follower. A group may be megabytes (8,190
/// transfers are about 1 MiB), and openraft gives each append round trip one heartbeat
/// interval: a message of hundreds of groups could never make it in time.
pub const APPEND_ENTRIES_MAX: u64 = 4;

/// Most operations in one log entry.
pub const GROUP_OPS_MAX: usize = 8_192;

/// Operations waiting to be proposed before `execute` waits for room.
pub const PROPOSAL_QUEUE_MAX: usize = 65_536;

/// Entries proposed and not yet applied, at most.
pub const PROPOSALS_IN_FLIGHT_MAX: usize = 4;

/// How often the leader looks for pending transfers whose timeout passed.
pub const TICK_MS: u64 = 100;

/// How long adding a node waits for it to catch up with the log before it becomes a voter;
/// less than the API's request timeout, so that a node with much to catch up is reported as
/// catching up rather than timed out.
pub const CATCH_UP_WAIT_MS: u64 = 8_000;
