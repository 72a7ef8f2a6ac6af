//! Waking the tailer's thread: inotify events, shutdown, or a timeout.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
struct Flags {
    rescan: bool,
    data: bool,
}

/// Cloneable handle; [`Waker::wait`] returns when any clone calls a `wake_*` method.
#[derive(Debug, Clone, Default)]
pub struct Waker {
    inner: Arc<(Mutex<Flags>, Condvar)>,
}

impl Waker {
    fn flags(&self) -> std::sync::MutexGuard<'_, Flags> {
        self.inner.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A directory changed: files may have appeared, been renamed or removed.
    pub fn wake_rescan(&self) {
        self.flags().rescan = true;
        self.inner.1.notify_all();
    }

    /// A file has new data (or someone wants the tailer to look now, e.g. at shutdown).
    pub fn wake_data(&self) {
        let mut f = self.flags();
        if !f.data {
            f.data = true;
            self.inner.1.notify_all();
        }
    }

    /// Takes the "rescan wanted" flag.
    pub fn take_rescan(&self) -> bool {
        std::mem::take(&mut self.flags().rescan)
    }

    /// Blocks until woken or `timeout` passes; clears the data flag.
    pub fn wait(&self, timeout: Duration) {
        let mut f = self.flags();
        if !f.data && !f.rescan {
            f = self
                .inner
                .1
                .wait_timeout(f, timeout)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        f.data = false;
    }
}
