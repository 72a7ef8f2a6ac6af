//! Waking the tailer's thread: inotify events, shutdown, or a timeout.
//!
//! The thread sleeps in `poll(2)` on an eventfd (for wakes from other threads) and, when the
//! tailer watches directories, on its inotify descriptor. Reading inotify on the tailer's own
//! thread (rather than on a watcher thread that reads every event as it arrives) lets the kernel
//! merge the repeated `IN_MODIFY` events of a busy file while the thread is busy or lingering:
//! a file written a hundred times a second costs a wake-up per batch, not per write.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
struct Flags {
    rescan: bool,
    data: bool,
}

#[derive(Debug)]
struct Inner {
    flags: Mutex<Flags>,
    /// Counts wakes from other threads; readable while non-zero.
    event: Option<OwnedFd>,
}

/// Cloneable handle; [`Waker::wait`] returns when any clone calls a `wake_*` method.
#[derive(Debug, Clone)]
pub struct Waker {
    inner: Arc<Inner>,
}

impl Default for Waker {
    fn default() -> Self {
        // SAFETY: eventfd returns a new descriptor we own, or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        // Without an eventfd (descriptor limit reached) waits simply run to their timeout.
        let event = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) });
        Waker {
            inner: Arc::new(Inner {
                flags: Mutex::new(Flags::default()),
                event,
            }),
        }
    }
}

impl Waker {
    fn flags(&self) -> std::sync::MutexGuard<'_, Flags> {
        self.inner.flags.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn signal(&self) {
        if let Some(fd) = &self.inner.event {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a local to a descriptor we own. A full counter
            // (EAGAIN) still leaves it readable, which is all a wake needs.
            unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// A directory changed: files may have appeared, been renamed or removed.
    pub fn wake_rescan(&self) {
        self.flags().rescan = true;
        self.signal();
    }

    /// A file has new data (or someone wants the tailer to look now, e.g. at shutdown).
    pub fn wake_data(&self) {
        let mut f = self.flags();
        if !f.data {
            f.data = true;
            drop(f);
            self.signal();
        }
    }

    /// [`Self::wake_data`] from the waiting thread itself (no wake-up needed).
    pub(crate) fn note_data(&self) {
        self.flags().data = true;
    }

    /// [`Self::wake_rescan`] from the waiting thread itself.
    pub(crate) fn note_rescan(&self) {
        self.flags().rescan = true;
    }

    fn reset_event(&self) {
        if let Some(fd) = &self.inner.event {
            let mut count: u64 = 0;
            // SAFETY: reads the 8-byte counter into a local, resetting it; EAGAIN when 0.
            unsafe { libc::read(fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
        }
    }

    /// Takes the "rescan wanted" flag.
    pub fn take_rescan(&self) -> bool {
        std::mem::take(&mut self.flags().rescan)
    }

    /// Blocks until woken, `also` (a descriptor such as inotify's) is readable, or `timeout`
    /// passes; clears the data flag. Returns whether `also` is readable.
    pub fn wait(&self, timeout: Duration, also: Option<RawFd>) -> bool {
        {
            let mut f = self.flags();
            if f.data || f.rescan {
                f.data = false;
                drop(f);
                // A wake that set the flag also counted on the eventfd: consumed here, so the
                // next wait does not return for it a second time.
                self.reset_event();
                return false;
            }
        }
        let mut fds = [
            libc::pollfd {
                fd: self.inner.event.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: also.unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: polls two pollfd structs we own (negative fds are ignored by the kernel).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if n > 0 && fds[0].revents != 0 {
            self.reset_event();
        }
        self.flags().data = false;
        n > 0 && fds[1].revents != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_wake_from_another_thread_ends_the_wait_and_a_timeout_ends_it_otherwise() {
        let w = Waker::default();
        let t0 = Instant::now();
        assert!(!w.wait(Duration::from_millis(50), None));
        assert!(t0.elapsed() >= Duration::from_millis(45));

        let w2 = w.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            w2.wake_data();
        });
        let t0 = Instant::now();
        w.wait(Duration::from_secs(20), None);
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the wake was missed"
        );
        h.join().unwrap();

        // A wake that came before the wait is not lost; the rescan flag survives the wait.
        w.wake_rescan();
        let t0 = Instant::now();
        w.wait(Duration::from_secs(20), None);
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert!(w.take_rescan());
        assert!(!w.take_rescan());
    }

    #[test]
    fn a_readable_descriptor_ends_the_wait() {
        let w = Waker::default();
        let mut fds = [0; 2];
        // SAFETY: pipe fills the two descriptors we pass.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (r, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        unsafe { libc::write(wr.as_raw_fd(), b"x".as_ptr().cast(), 1) };
        let t0 = Instant::now();
        assert!(w.wait(Duration::from_secs(20), Some(r.as_raw_fd())));
        assert!(t0.elapsed() < Duration::from_secs(10));
    }
}
