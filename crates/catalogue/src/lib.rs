//! The PostgreSQL catalogue that replicated `kinsight server`s share (issue 16).
//!
//! What lives here is small and ordered; what is large lives in the object store:
//! - **the shared log's order** ([`Catalogue::append_log`], [`Catalogue::log_after`]): each
//!   group commit of a replica is one object in the bucket and one row here that gives its
//!   records their sequence numbers. Rows are appended under a transaction-scoped advisory
//!   lock, so numbers are handed out in commit order: a reader that has seen sequence `n` has
//!   seen every record before it.
//! - **checkpoints** ([`Catalogue::publish_checkpoint`]): the catalogue and segment manifest of
//!   the log store as of a sequence number, published by the maintenance leader and fenced by
//!   its lease epoch.
//! - **leases** ([`Catalogue::acquire_lease`]): which replica runs maintenance or alarm
//!   evaluation, renewed by its holder, taken over when it lapses.
//! - **the replica registry** ([`Catalogue::heartbeat`]).
//! - **documents** ([`Catalogue::document`], [`Catalogue::replace_document`]): small state
//!   replaced as a whole with optimistic concurrency (scoped tokens).
//! - **journals** ([`Catalogue::journal_append`], [`Catalogue::journal_read`],
//!   [`Catalogue::journal_snapshot`]): state every replica keeps in memory and changes often
//!   (alarms) as numbered change sets; an append is a compare-and-set on the last number, so
//!   every replica applies the same changes in the same order, and writes of background work
//!   can be fenced by a lease.
//!
//! Schema changes are versioned migrations (`migrations/`), applied by [`Catalogue::connect`]
//! under sqlx's migration lock, so replicas starting together apply each once.

use std::time::Duration;

#[cfg(feature = "testing")]
pub mod testing;

use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// How long a call waits for a connection before the catalogue counts as unavailable.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Key of the advisory lock that serialises log appends.
const LOG_LOCK: i64 = 0x006b_696e_736c_6f67; // "kinslog"

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("catalogue URL: {0}")]
    Url(String),
    #[error("the PostgreSQL catalogue is unavailable: {0}")]
    Unavailable(String),
    #[error("applying the catalogue's schema migrations failed: {0}")]
    Migrate(String),
}

impl From<sqlx::Error> for CatalogueError {
    fn from(e: sqlx::Error) -> Self {
        CatalogueError::Unavailable(e.to_string())
    }
}

pub type Result<T, E = CatalogueError> = std::result::Result<T, E>;

/// One row of the shared log: records `first_seq ..= last_seq` are in `object_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogObject {
    pub first_seq: u64,
    pub last_seq: u64,
    pub object_key: String,
    pub replica: String,
    pub bytes: u64,
    /// When the row was committed (PostgreSQL's clock, epoch ms): the same on every replica.
    pub committed_ms: i64,
}

/// A published checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    pub version: i64,
    pub seq: u64,
    pub object_key: String,
    pub epoch: i64,
    pub created_ms: i64,
}

/// A live (or recently live) replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaRow {
    pub id: String,
    pub address: String,
    pub started_ms: i64,
    pub heartbeat_ms: i64,
    pub applied_seq: u64,
}

/// A write made as the holder of a lease: refused unless `holder` still holds `lease` at
/// `epoch` when it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence<'a> {
    pub lease: &'a str,
    pub holder: &'a str,
    pub epoch: i64,
}

/// What [`Catalogue::journal_append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalAppend {
    /// Stored as entry `seq`, at `written_ms` (PostgreSQL's clock).
    Appended { seq: u64, written_ms: i64 },
    /// Another entry came first: the caller is behind; read, apply and try again.
    Behind,
    /// The fence's lease is no longer held: nothing was written.
    Fenced,
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub seq: u64,
    pub written_ms: i64,
    pub payload: Vec<u8>,
}

/// What a reader at some entry needs to catch up: the snapshot when it folded entries the
/// reader has not applied (start again from it), then the entries after.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalRead {
    /// `(snapshot_seq, snapshot)`.
    pub snapshot: Option<(u64, Vec<u8>)>,
    pub entries: Vec<JournalEntry>,
    /// The journal's last entry number when read.
    pub last_seq: u64,
}

/// A lease held: its name and the epoch that fences writes made under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub epoch: i64,
    pub expires_ms: i64,
}

/// Handle to the catalogue; cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct Catalogue {
    pool: PgPool,
}

/// The server's clock in PostgreSQL, epoch milliseconds.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

fn seq(v: i64) -> u64 {
    v.max(0) as u64
}

impl Catalogue {
    /// Connects (`postgres://USER[:PASSWORD]@HOST:PORT/DB`, libpq's parameters such as
    /// `sslmode` accepted) and applies pending schema migrations.
    pub async fn connect(url: &str) -> Result<Catalogue> {
        if !["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            return Err(CatalogueError::Url(
                "expected postgres://USER[:PASSWORD]@HOST:PORT/DB".into(),
            ));
        }
        let opts: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| CatalogueError::Url(e.to_string()))?;
        let opts = opts.application_name("kinsight");
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A connection PostgreSQL dropped (restart) is replaced rather than failing a call.
            .test_before_acquire(true)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| CatalogueError::Migrate(e.to_string()))?;
        Ok(Catalogue { pool })
    }

    /// PostgreSQL's clock, epoch ms.
    pub async fn now_ms(&self) -> Result<i64> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {NOW_MS}")))
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    // ---- shared log ----

    /// Gives `count` records in `object_key` (already durable in the object store) the next
    /// sequence numbers; returns the row. Commit order is sequence order.
    pub async fn append_log(
        &self,
        object_key: &str,
        replica: &str,
        count: u64,
        bytes: u64,
    ) -> Result<LogObject> {
        debug_assert!(count > 0);
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOG_LOCK)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO log_objects (first_seq, last_seq, object_key, replica, bytes, committed_ms)
             SELECT n + 1, n + $1, $2, $3, $4, {NOW_MS}
             FROM (SELECT greatest(
                     coalesce((SELECT max(last_seq) FROM log_objects), 0),
                     coalesce((SELECT max(seq) FROM checkpoints), 0)) AS n) AS last
             RETURNING first_seq, last_seq, committed_ms"
        )))
        .bind(count as i64)
        .bind(object_key)
        .bind(replica)
        .bind(bytes as i64)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(LogObject {
            first_seq: seq(row.try_get(0)?),
            last_seq: seq(row.try_get(1)?),
            object_key: object_key.to_string(),
            replica: replica.to_string(),
            bytes,
            committed_ms: row.try_get(2)?,
        })
    }

    /// Log rows holding records after `after`, in order, at most `limit`.
    pub async fn log_after(&self, after: u64, limit: u32) -> Result<Vec<LogObject>> {
        let rows = sqlx::query(
            "SELECT first_seq, last_seq, object_key, replica, bytes, committed_ms
             FROM log_objects WHERE last_seq > $1 ORDER BY first_seq LIMIT $2",
        )
        .bind(after as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LogObject {
                    first_seq: seq(r.try_get(0)?),
                    last_seq: seq(r.try_get(1)?),
                    object_key: r.try_get(2)?,
                    replica: r.try_get(3)?,
                    bytes: seq(r.try_get(4)?),
                    committed_ms: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// The highest sequence number handed out (0 when the log is empty).
    pub async fn last_seq(&self) -> Result<u64> {
        let row = sqlx::query("SELECT coalesce(max(last_seq), 0) FROM log_objects")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq(row.try_get(0)?))
    }

    /// Removes the rows of objects whose records are all `<= through`, if the caller still
    /// holds `lease`; returns their object keys (to delete from the bucket afterwards).
    pub async fn truncate_log(
        &self,
        through: u64,
        lease_name: &str,
        holder: &str,
        epoch: i64,
    ) -> Result<Option<Vec<String>>> {
        let mut tx = self.pool.begin().await?;
        if !holds(&mut tx, lease_name, holder, epoch).await? {
            return Ok(None);
        }
        let rows = sqlx::query("DELETE FROM log_objects WHERE last_seq <= $1 RETURNING object_key")
            .bind(through as i64)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect::<Result<Vec<String>>>()
            .map(Some)
    }

    // ---- checkpoints ----

    /// Publishes a checkpoint if the caller still holds `lease_name` at `epoch` (otherwise
    /// `None`: another replica took over and this one's work must not count). Keeps the
    /// newest `keep` checkpoints and returns the object keys of the ones it removed.
    pub async fn publish_checkpoint(
        &self,
        seq_: u64,
        object_key: &str,
        lease_name: &str,
        holder: &str,
        epoch: i64,
        keep: u32,
    ) -> Result<Option<(CheckpointRow, Vec<String>)>> {
        let mut tx = self.pool.begin().await?;
        if !holds(&mut tx, lease_name, holder, epoch).await? {
            return Ok(None);
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO checkpoints (seq, object_key, epoch, created_ms)
             VALUES ($1, $2, $3, {NOW_MS}) RETURNING version, created_ms"
        )))
        .bind(seq_ as i64)
        .bind(object_key)
        .bind(epoch)
        .fetch_one(&mut *tx)
        .await?;
        let version: i64 = row.try_get(0)?;
        let dropped =
            sqlx::query("DELETE FROM checkpoints WHERE version <= $1 - $2 RETURNING object_key")
                .bind(version)
                .bind(keep.max(1) as i64)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        let dropped = dropped
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect::<Result<Vec<String>>>()?;
        Ok(Some((
            CheckpointRow {
                version,
                seq: seq_,
                object_key: object_key.to_string(),
                epoch,
                created_ms: row.try_get(1)?,
            },
            dropped,
        )))
    }

    /// The newest checkpoints, newest first.
    pub async fn checkpoints(&self, limit: u32) -> Result<Vec<CheckpointRow>> {
        let rows = sqlx::query(
            "SELECT version, seq, object_key, epoch, created_ms FROM checkpoints
             ORDER BY version DESC LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CheckpointRow {
                    version: r.try_get(0)?,
                    seq: seq(r.try_get(1)?),
                    object_key: r.try_get(2)?,
                    epoch: r.try_get(3)?,
                    created_ms: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Every object key a checkpoint row names (so that cleanup never deletes one).
    pub async fn checkpoint_keys(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT object_key FROM checkpoints")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    // ---- leases ----

    /// Takes or renews lease `name` for `holder` for `ttl`, if it is free, lapsed or already
    /// the holder's. Returns the lease held, or `None` when another replica holds it.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO leases (name, holder, epoch, expires_ms)
             VALUES ($1, $2, 1, {NOW_MS} + $3)
             ON CONFLICT (name) DO UPDATE SET
                 epoch = CASE WHEN leases.holder = EXCLUDED.holder AND leases.expires_ms > {NOW_MS}
                              THEN leases.epoch ELSE leases.epoch + 1 END,
                 holder = EXCLUDED.holder,
                 expires_ms = EXCLUDED.expires_ms
             WHERE leases.holder = EXCLUDED.holder OR leases.expires_ms <= {NOW_MS}
             RETURNING epoch, expires_ms"
        )))
        .bind(name)
        .bind(holder)
        .bind(ttl.as_millis() as i64)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Lease {
                epoch: r.try_get(0)?,
                expires_ms: r.try_get(1)?,
            })
        })
        .transpose()
    }

    /// Gives a lease up (at shutdown), so another replica need not wait for it to lapse. The
    /// row stays (expired), so the next holder's epoch is still higher than every earlier one.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("UPDATE leases SET expires_ms = 0 WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether `holder` holds `name` at `epoch` now.
    pub async fn holds_lease(&self, name: &str, holder: &str, epoch: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let held = holds(&mut tx, name, holder, epoch).await?;
        tx.commit().await?;
        Ok(held)
    }

    // ---- replicas ----

    /// Registers or refreshes a replica.
    pub async fn heartbeat(
        &self,
        id: &str,
        address: &str,
        started_ms: i64,
        applied_seq: u64,
    ) -> Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO replicas (id, address, started_ms, heartbeat_ms, applied_seq)
             VALUES ($1, $2, $3, {NOW_MS}, $4)
             ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address,
                 started_ms = EXCLUDED.started_ms, heartbeat_ms = EXCLUDED.heartbeat_ms,
                 applied_seq = EXCLUDED.applied_seq"
        )))
        .bind(id)
        .bind(address)
        .bind(started_ms)
        .bind(applied_seq as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replicas that heartbeat within `within`, by id.
    pub async fn live_replicas(&self, within: Duration) -> Result<Vec<ReplicaRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, address, started_ms, heartbeat_ms, applied_seq FROM replicas
             WHERE heartbeat_ms > {NOW_MS} - $1 ORDER BY id"
        )))
        .bind(within.as_millis() as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReplicaRow {
                    id: r.try_get(0)?,
                    address: r.try_get(1)?,
                    started_ms: r.try_get(2)?,
                    heartbeat_ms: r.try_get(3)?,
                    applied_seq: seq(r.try_get(4)?),
                })
            })
            .collect()
    }

    /// Removes a replica's row (clean shutdown).
    pub async fn deregister(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM replicas WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- documents ----

    /// A document and its version (`None`: never written).
    pub async fn document(&self, name: &str) -> Result<Option<(i64, Vec<u8>)>> {
        let row = sqlx::query("SELECT version, body FROM documents WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Replaces a document if its version is still `expected` (0: it must not exist yet).
    /// Returns the new version, or `None` when someone else changed it first.
    pub async fn replace_document(
        &self,
        name: &str,
        expected: i64,
        body: &[u8],
    ) -> Result<Option<i64>> {
        let row = if expected == 0 {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO documents (name, body, version, updated_ms) VALUES ($1, $2, 1, {NOW_MS})
                 ON CONFLICT (name) DO NOTHING RETURNING version"
            )))
            .bind(name)
            .bind(body)
            .fetch_optional(&self.pool)
            .await?
        } else {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE documents SET body = $2, version = version + 1, updated_ms = {NOW_MS}
                 WHERE name = $1 AND version = $3 RETURNING version"
            )))
            .bind(name)
            .bind(body)
            .bind(expected)
            .fetch_optional(&self.pool)
            .await?
        };
        row.map(|r| Ok(r.try_get(0)?)).transpose()
    }
}

impl Catalogue {
    // ---- journals ----

    /// Appends `payload` as entry `expected + 1` of journal `name` if `expected` is its last
    /// entry (0: none yet), and — with a fence — only while the fence's lease is held.
    pub async fn journal_append(
        &self,
        name: &str,
        expected: u64,
        payload: &[u8],
        fence: Option<Fence<'_>>,
    ) -> Result<JournalAppend> {
        let mut tx = self.pool.begin().await?;
        if let Some(f) = fence
            && !holds(&mut tx, f.lease, f.holder, f.epoch).await?
        {
            return Ok(JournalAppend::Fenced);
        }
        sqlx::query(
            "INSERT INTO journal_heads (name, last_seq) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE journal_heads SET last_seq = last_seq + 1
             WHERE name = $1 AND last_seq = $2 RETURNING last_seq, {NOW_MS}"
        )))
        .bind(name)
        .bind(expected as i64)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(JournalAppend::Behind);
        };
        let (n, written_ms): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        sqlx::query(
            "INSERT INTO journal_entries (name, seq, written_ms, payload) VALUES ($1, $2, $3, $4)",
        )
        .bind(name)
        .bind(n)
        .bind(written_ms)
        .bind(payload)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(JournalAppend::Appended {
            seq: seq(n),
            written_ms,
        })
    }

    /// What a reader that has applied entries up to `after` needs, at most `limit` entries:
    /// the snapshot if it covers entries after `after`, then the entries after both. One
    /// consistent view (a snapshot folded meanwhile cannot leave a hole).
    pub async fn journal_read(&self, name: &str, after: u64, limit: u32) -> Result<JournalRead> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let head = sqlx::query(
            "SELECT last_seq, snapshot_seq, snapshot FROM journal_heads WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(head) = head else {
            return Ok(JournalRead::default());
        };
        let last_seq = seq(head.try_get(0)?);
        let snapshot_seq = seq(head.try_get(1)?);
        let snapshot = match head.try_get::<Option<Vec<u8>>, _>(2)? {
            Some(bytes) if snapshot_seq > after => Some((snapshot_seq, bytes)),
            _ => None,
        };
        let from = after.max(snapshot_seq);
        let rows = sqlx::query(
            "SELECT seq, written_ms, payload FROM journal_entries
             WHERE name = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(name)
        .bind(from as i64)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let entries = rows
            .iter()
            .map(|r| {
                Ok(JournalEntry {
                    seq: seq(r.try_get(0)?),
                    written_ms: r.try_get(1)?,
                    payload: r.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(JournalRead {
            snapshot,
            entries,
            last_seq,
        })
    }

    /// Replaces entries `..= through` of journal `name` with `snapshot` (the state after
    /// applying them), under the fence; returns false when fenced off or when a snapshot at or
    /// past `through` is already there.
    pub async fn journal_snapshot(
        &self,
        name: &str,
        through: u64,
        snapshot: &[u8],
        fence: Fence<'_>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        if !holds(&mut tx, fence.lease, fence.holder, fence.epoch).await? {
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE journal_heads SET snapshot_seq = $2, snapshot = $3
             WHERE name = $1 AND snapshot_seq < $2 AND last_seq >= $2",
        )
        .bind(name)
        .bind(through as i64)
        .bind(snapshot)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if done {
            sqlx::query("DELETE FROM journal_entries WHERE name = $1 AND seq <= $2")
                .bind(name)
                .bind(through as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done)
    }
}

/// Whether `holder` holds lease `name` at `epoch`, locking the row for the transaction so a
/// takeover waits until the write it fences has committed.
async fn holds(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    name: &str,
    holder: &str,
    epoch: i64,
) -> Result<bool> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT holder = $2 AND epoch = $3 AND expires_ms > {NOW_MS}
         FROM leases WHERE name = $1 FOR UPDATE"
    )))
    .bind(name)
    .bind(holder)
    .bind(epoch)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match row {
        Some(r) => r.try_get(0)?,
        None => false,
    })
}
