//! A byte budget for what requests in progress hold in memory (issue 15): request bodies while
//! they are read and decoded, large answers (query results) while they are serialised, and
//! every answer of [`HELD_ANSWER_MIN_BYTES`] or more until it has been sent ([`hold_answers`]):
//! a client that reads slowly, or not at all, keeps its answer's bytes counted. Each holder
//! reserves what it takes; the sum never exceeds the budget, so the number of
//! requests in flight times their size cannot exhaust the server's memory.
//!
//! Bodies of CloudWatch requests whose signature is not checked yet (the signature covers
//! the body, so it must be read first) take from a smaller budget of their own: a client that
//! knows an access key id but not its secret can fill that one, never the budget of
//! authenticated requests.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::Body as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::state::AppState;

/// Answers at least this large take their size from the request budget until they are sent.
pub const HELD_ANSWER_MIN_BYTES: u64 = 64 * 1024;

/// Reservations are counted in KiB (a semaphore holds at most `u32::MAX` permits at once).
const UNIT: usize = 1024;

/// A budget of bytes.
#[derive(Debug)]
pub struct MemoryBudget {
    units: Arc<Semaphore>,
    total_units: u32,
}

/// Bytes reserved until dropped.
#[derive(Debug)]
pub struct Reserved {
    _permits: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl Reserved {
    /// A reservation of nothing (for holders that need none).
    pub fn none() -> Reserved {
        Reserved {
            _permits: None,
            bytes: 0,
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds another reservation to this one.
    pub fn merge(&mut self, other: Reserved) {
        self.bytes += other.bytes;
        if let Some(p) = other._permits {
            match &mut self._permits {
                Some(mine) => mine.merge(p),
                None => self._permits = Some(p),
            }
        }
    }
}

impl MemoryBudget {
    pub fn new(bytes: usize) -> MemoryBudget {
        let total_units = (bytes / UNIT).clamp(1, u32::MAX as usize >> 1) as u32;
        MemoryBudget {
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
        }
    }

    /// The whole budget in bytes.
    pub fn total_bytes(&self) -> usize {
        self.total_units as usize * UNIT
    }

    /// Bytes reserved now.
    pub fn used_bytes(&self) -> usize {
        (self.total_units as usize - self.units.available_permits()) * UNIT
    }

    fn units_for(&self, bytes: usize) -> u32 {
        (bytes.div_ceil(UNIT).max(1) as u64).min(self.total_units as u64) as u32
    }

    /// Reserves `bytes` (at most the whole budget), waiting up to `wait` for them to be free.
    pub async fn reserve(&self, bytes: usize, wait: Duration) -> Option<Reserved> {
        let units = self.units_for(bytes);
        let permits = tokio::time::timeout(wait, self.units.clone().acquire_many_owned(units))
            .await
            .ok()?
            .ok()?;
        Some(Reserved {
            _permits: Some(permits),
            bytes,
        })
    }

    /// Reserves `bytes` now, or not at all.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reserved> {
        let units = self.units_for(bytes);
        let permits = self.units.clone().try_acquire_many_owned(units).ok()?;
        Some(Reserved {
            _permits: Some(permits),
            bytes,
        })
    }
}

/// The budgets of a server.
#[derive(Debug, Clone)]
pub struct Budgets {
    /// Bodies and answers of requests in progress.
    pub requests: Arc<MemoryBudget>,
    /// Bodies read before their signature is verified.
    pub unverified: Arc<MemoryBudget>,
    /// How long a request waits for its share before it is answered 503.
    pub wait: Duration,
}

impl Budgets {
    pub fn new(request_bytes: usize) -> Budgets {
        Budgets {
            requests: Arc::new(MemoryBudget::new(request_bytes)),
            // A quarter, at least one CloudWatch request.
            unverified: Arc::new(MemoryBudget::new((request_bytes / 4).max(4 << 20))),
            wait: Duration::from_secs(10),
        }
    }
}

/// A reservation that travels with a response (in its extensions) and is released once the
/// response has been sent or its connection closed: the transport moves it into the body it
/// hands to hyper.
#[derive(Debug, Clone)]
pub struct HeldUntilSent(pub Arc<Reserved>);

/// Middleware: an answer of [`HELD_ANSWER_MIN_BYTES`] or more holds its size in the request
/// budget until it is sent, so answers waiting for slow readers never hold more than the
/// budget. With no room, the answer to a request that only reads (GET, HEAD, a CloudWatch
/// Get/Filter/Describe/List action) is dropped and the client gets `503` with `Retry-After`;
/// the answer to one that wrote (an ingest whose rejections are long) is sent anyway — what it
/// did is done, and a retry would do it again.
pub async fn hold_answers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let cloudwatch = crate::transport::is_cloudwatch(req.uri().path(), req.headers());
    let reads_only = if cloudwatch {
        req.headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.rsplit('.').next())
            .is_some_and(|a| {
                ["Get", "Filter", "Describe", "List"]
                    .iter()
                    .any(|p| a.starts_with(p))
            })
    } else {
        matches!(
            *req.method(),
            axum::http::Method::GET | axum::http::Method::HEAD
        )
    };
    let mut res = next.run(req).await;
    if res.extensions().get::<HeldUntilSent>().is_some() {
        return res;
    }
    let Some(n) = res.body().size_hint().exact() else {
        return res;
    };
    if n < HELD_ANSWER_MIN_BYTES {
        return res;
    }
    match state.budgets.requests.try_reserve(n as usize) {
        Some(r) => {
            res.extensions_mut().insert(HeldUntilSent(Arc::new(r)));
            res
        }
        None if reads_only => crate::transport::unavailable(
            cloudwatch,
            "the server holds as many answers for clients as its memory budget allows (--request-memory); retry shortly",
        ),
        None => res,
    }
}

/// The request budget by default: an eighth of what the process may use (its cgroup's limit,
/// else the machine's memory), between 64 MiB and 1 GiB; 256 MiB when nothing can be read.
pub fn default_request_bytes() -> usize {
    match kinsight_query::memory::available_bytes() {
        Some(total) => ((total / 8) as usize).clamp(64 << 20, 1 << 30),
        None => 256 << 20,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_never_exceed_the_budget() {
        let b = MemoryBudget::new(10 << 20);
        let a = b.try_reserve(6 << 20).unwrap();
        assert!(b.try_reserve(6 << 20).is_none());
        assert!(
            b.reserve(6 << 20, Duration::from_millis(20))
                .await
                .is_none(),
            "waits, then gives up"
        );
        let mut c = b.try_reserve(4 << 20).unwrap();
        assert_eq!(b.used_bytes(), 10 << 20);
        drop(a);
        c.merge(b.try_reserve(1 << 20).unwrap());
        assert_eq!(c.bytes(), 5 << 20);
        assert_eq!(b.used_bytes(), 5 << 20);
        // More than the whole budget takes the whole budget.
        drop(c);
        let all = b.try_reserve(100 << 20).unwrap();
        assert_eq!(b.used_bytes(), 10 << 20);
        drop(all);
        assert_eq!(b.used_bytes(), 0);
    }
}
