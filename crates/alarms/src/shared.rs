//! The seam to the replicas' shared journal of alarm changes. The alarm service writes change
//! sets (JSON, the local journal's line format) and snapshots (the `alarms.json` document);
//! the server implements the trait over the PostgreSQL catalogue's journals, so this crate
//! needs no database client.

/// The journal's name in the catalogue (also how errors name the shared state).
pub const SHARED_JOURNAL_NAME: &str = "alarms";

/// What [`SharedJournal::append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored as entry `n`.
    Done(u64),
    /// Another replica appended after the caller's last entry first.
    Behind,
    /// `fenced` was asked and this replica does not lead: nothing was written.
    Fenced,
}

/// What a replica at some entry reads to catch up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedRead {
    /// `(n, document)`: a snapshot of the state after entry `n`, when it covers entries the
    /// reader has not applied (the reader starts again from it).
    pub snapshot: Option<(u64, Vec<u8>)>,
    /// `(n, change set)` after the reader's entry (and the snapshot), in order.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// The journal's last entry when read.
    pub last_seq: u64,
}

/// An ordered journal that every replica reads, with compare-and-set appends. Methods block
/// (the service calls them off the async workers) and return a message when the journal
/// cannot be reached; they must give up after a bounded wait.
pub trait SharedJournal: Send + Sync + 'static {
    /// Appends `payload` as the entry after `expected`, if `expected` is still the last
    /// entry; with `fenced`, only while this replica leads.
    fn append(&self, expected: u64, payload: &[u8], fenced: bool) -> Result<Appended, String>;
    /// Up to `limit` entries after `after` (and the snapshot, if newer than `after`).
    fn read(&self, after: u64, limit: u32) -> Result<SharedRead, String>;
    /// Replaces entries up to `through` by `snapshot`, fenced; false when refused.
    fn snapshot(&self, through: u64, snapshot: &[u8]) -> Result<bool, String>;
    /// Whether this replica leads background work (evaluation, notification) now.
    fn leading(&self) -> bool;
}
