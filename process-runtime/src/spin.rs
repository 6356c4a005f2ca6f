//! Watching shared memory for a short while before a blocking wait.
//!
//! Between a parent and its child, a wait that blocks costs the waiting side a system
//! call and a sleep, and the side that ends it a system call to wake it; on a virtual
//! machine whose other core has gone idle, the wake-up also waits for that core to come
//! back, tens of microseconds. A stream of 1 KiB messages, whose reader catches up with
//! its writer every few messages, paid that each time: two thirds of its throughput.
//! So the waits of a conversation first watch the word that ends them for up to
//! [`BUDGET`], and block only when it has not moved by then: the parent's for the next
//! message in the tells ring, the child's for room in the parent's mailbox, and a
//! child's for a message from a sibling on a direct link (the sender counts what it
//! writes on the link's page).
//!
//! The budget is about what a blocked wait costs on such a machine, so a wait for
//! something that comes late wastes at most about as much again as blocking at once
//! would have. On a 2-core virtual machine the stream ran as fast with 5, 10 and 20
//! microseconds, and at a third of that speed with none.
//!
//! While watching, the thread yields its core now and then. When the other side is
//! queued behind it on the same core (a socket write wakes its reader on the writer's
//! core), it runs at once instead of after the budget. On a machine with one core
//! nothing is watched.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a wait watches before it blocks.
pub(crate) const BUDGET: Duration = Duration::from_micros(10);

/// Looks at `ready` until it returns `true` or `budget` has passed; returns whether it
/// did. Returns `false` at once on a machine with one core.
pub(crate) fn watch(budget: Duration, mut ready: impl FnMut() -> bool) -> bool {
    if !several_cores() {
        return false;
    }
    let start = Instant::now();
    loop {
        // The clock and the yield are paid once per round: each costs more than a look.
        for _ in 0..32 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= budget {
            return ready();
        }
        std::thread::yield_now();
    }
}

/// Whether this machine has more than one core to run on: on one, watching only keeps
/// the other side from running.
fn several_cores() -> bool {
    static SEVERAL: OnceLock<bool> = OnceLock::new();
    *SEVERAL.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_word_set_by_another_thread_ends_the_watch() {
        if !several_cores() {
            return;
        }
        let flag = Arc::new(AtomicBool::new(false));
        let setter = {
            let flag = Arc::clone(&flag);
            std::thread::spawn(move || flag.store(true, Ordering::Release))
        };
        // Generous: the setter may be slow to start on a busy machine; the watch ends
        // as soon as it runs.
        let seen = watch(Duration::from_secs(5), || flag.load(Ordering::Acquire));
        setter.join().unwrap();
        assert!(seen);
    }

    #[test]
    fn a_word_that_never_moves_ends_the_watch_after_its_budget() {
        let start = Instant::now();
        assert!(!watch(Duration::from_millis(2), || false));
        if several_cores() {
            assert!(start.elapsed() >= Duration::from_millis(2));
        }
    }
}
