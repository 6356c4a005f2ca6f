//! Marks of when the steps of a supervised restart happen (the child's end seen, the
//! supervisor told, the replacement spawned), so that the bench can show what each
//! step of its restart figure costs. Recorded only with the `fault-injection` feature
//! and only while a caller asked for it; otherwise a mark is nothing at all.

#[cfg(feature = "fault-injection")]
mod recording {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Mutex, PoisonError};
    use std::time::Instant;

    static ON: AtomicBool = AtomicBool::new(false);
    static MARKS: Mutex<Vec<(&'static str, Instant)>> = Mutex::new(Vec::new());

    /// Notes that `step` happens now, while recording.
    pub(crate) fn mark(step: &'static str) {
        if ON.load(Ordering::Relaxed) {
            let now = Instant::now();
            MARKS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((step, now));
        }
    }

    /// Starts or stops recording; either way the marks so far are dropped.
    pub(crate) fn record(on: bool) {
        MARKS.lock().unwrap_or_else(PoisonError::into_inner).clear();
        ON.store(on, Ordering::Relaxed);
    }

    /// The marks since the last call, oldest first.
    pub(crate) fn take() -> Vec<(&'static str, Instant)> {
        std::mem::take(&mut *MARKS.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(feature = "fault-injection")]
pub(crate) use recording::{mark, record, take};

/// Without the feature, no mark is recorded.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn mark(_step: &'static str) {}
