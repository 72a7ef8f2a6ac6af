//! Replicated servers (issue 16): the alarm service's shared journal over the PostgreSQL
//! catalogue. The alarm service is synchronous (it runs off the async workers), the
//! catalogue is async: each call blocks on the server's runtime, bounded by a timeout, so a
//! PostgreSQL outage turns into a clear "unavailable" instead of a hung request.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kinsight_alarms::shared::SHARED_JOURNAL_NAME;
use kinsight_alarms::{Appended, SharedJournal, SharedRead};
use kinsight_catalogue::{Catalogue, CatalogueError, Fence, JournalAppend};

/// How long one catalogue call may take before the alarm call fails as unavailable.
pub const CATALOGUE_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The epoch of the lease under which this replica leads background work, if it does.
pub type LeaderEpoch = Arc<dyn Fn() -> Option<i64> + Send + Sync>;

/// [`SharedJournal`] over the catalogue's `alarms` journal. Fenced writes carry the
/// maintenance lease (`kinsight_store::shared::MAINTENANCE_LEASE`): the replica that maintains
/// the store also evaluates alarms and sends their notifications.
pub struct CatalogueJournal {
    catalogue: Catalogue,
    runtime: tokio::runtime::Handle,
    holder: String,
    lease: &'static str,
    epoch: LeaderEpoch,
}

impl CatalogueJournal {
    /// Must be called within the server's runtime; its methods must then be called off it
    /// (from `spawn_blocking`), as the alarm service does.
    pub fn new(
        catalogue: Catalogue,
        holder: impl Into<String>,
        lease: &'static str,
        epoch: LeaderEpoch,
    ) -> Self {
        CatalogueJournal {
            catalogue,
            runtime: tokio::runtime::Handle::current(),
            holder: holder.into(),
            lease,
            epoch,
        }
    }

    fn call<T>(&self, f: impl Future<Output = Result<T, CatalogueError>>) -> Result<T, String> {
        match self
            .runtime
            .block_on(tokio::time::timeout(CATALOGUE_CALL_TIMEOUT, f))
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "the PostgreSQL catalogue did not answer within {CATALOGUE_CALL_TIMEOUT:?}"
            )),
        }
    }
}

impl SharedJournal for CatalogueJournal {
    fn append(&self, expected: u64, payload: &[u8], fenced: bool) -> Result<Appended, String> {
        let fence = if fenced {
            let Some(epoch) = (self.epoch)() else {
                return Ok(Appended::Fenced);
            };
            Some(Fence {
                lease: self.lease,
                holder: &self.holder,
                epoch,
            })
        } else {
            None
        };
        let r = self.call(self.catalogue.journal_append(
            SHARED_JOURNAL_NAME,
            expected,
            payload,
            fence,
        ))?;
        Ok(match r {
            JournalAppend::Appended { seq, .. } => Appended::Done(seq),
            JournalAppend::Behind => Appended::Behind,
            JournalAppend::Fenced => Appended::Fenced,
        })
    }

    fn read(&self, after: u64, limit: u32) -> Result<SharedRead, String> {
        let r = self.call(
            self.catalogue
                .journal_read(SHARED_JOURNAL_NAME, after, limit),
        )?;
        Ok(SharedRead {
            snapshot: r.snapshot,
            entries: r.entries.into_iter().map(|e| (e.seq, e.payload)).collect(),
            last_seq: r.last_seq,
        })
    }

    fn snapshot(&self, through: u64, snapshot: &[u8]) -> Result<bool, String> {
        let Some(epoch) = (self.epoch)() else {
            return Ok(false);
        };
        self.call(self.catalogue.journal_snapshot(
            SHARED_JOURNAL_NAME,
            through,
            snapshot,
            Fence {
                lease: self.lease,
                holder: &self.holder,
                epoch,
            },
        ))
    }

    fn leading(&self) -> bool {
        (self.epoch)().is_some()
    }
}
