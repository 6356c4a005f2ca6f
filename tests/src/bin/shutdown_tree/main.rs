//! A program for `tests/shutdown.rs`: it starts a tree of processes, says it is ready,
//! then does what its mode says while the test signals it. Not part of `cargo test` by
//! itself.
//!
//! ```text
//! shutdown_tree <dir> <mode>
//! ```
//!
//! Starts a [`Worker`], a [`Nested`] process (which starts a worker of its own, the
//! leaf), a [`Daemon`] and a [`Hung`] one, waits until each has written its pid, then
//! writes `<dir>/ready`. Modes:
//!
//! - `signal`: waits for every result (a signal's shutdown holds those calls until the
//!   program exits); writes `<dir>/main.returned` if they ever return.
//! - `two-signals`: the same, with the hung process's `on_finish` limit at 20 s.
//! - `told`: asks to be told with `shutdown_requested()`, polls it, then collects every
//!   result into `<dir>/results`, tries a start, and returns from `main` (exit 0).
//! - `told-wait`: the same, waiting with `wait_for_shutdown()`.
//! - `told-async`: the same, waiting on `wait_for_shutdown_async()` with the smallest
//!   executor there is (a thread that parks until woken).
//! - `on-demand`: calls `shutdown()`, writes the results, then starts and stops one more
//!   worker, and exits 0.
//! - `child-term`: starts only the worker and waits for its result, which the test
//!   ends with a SIGTERM to the worker itself; writes it to `<dir>/results`.
//! - `pool-run`: starts nothing but a pool of one worker that runs a [`Worker`] named
//!   `pooled` with `Pool::run`, then calls `shutdown()`; writes the run's outcomes to
//!   `<dir>/results` and exits 0.
//! - `pool-idle`: starts nothing but a pool of two workers, maps a few items on it,
//!   writes the pids of the workers that ran them to `<dir>/workers`, says it is ready, and waits for a
//!   signal with its workers idle (`wait_for_shutdown()` when `told` follows the mode,
//!   then maps again and writes the results; otherwise it never returns).

mod workers;

use std::time::{Duration, Instant};

use process_runtime::prelude::*;
use workers::{pid_of, report, Daemon, Hung, Nested, Worker};

struct Tree {
    worker: Handle<String>,
    nested: Handle<String>,
    daemon: Handle<()>,
    hung: Handle<()>,
}

impl Tree {
    fn start(dir: &str, hung_limit: Duration) -> Result<Self, ProcessError> {
        let tree = Tree {
            worker: worker(dir, "worker").start()?,
            nested: Nested {
                dir: dir.into(),
                leaf: None,
            }
            .start()?,
            daemon: Daemon { dir: dir.into() }.start()?,
            hung: Hung { dir: dir.into() }
                .start_with(Hung::config().with_timeout(Section::OnFinish, Some(hung_limit)))?,
        };
        for name in ["worker", "nested", "leaf", "daemon", "hung"] {
            pid_of(dir, name);
        }
        Ok(tree)
    }

    fn results(&self) -> String {
        format!(
            "worker: {:?}\nnested: {:?}\ndaemon: {:?}\nhung: {:?}\n",
            self.worker.result(),
            self.nested.result(),
            self.daemon.result(),
            self.hung.result()
        )
    }
}

fn worker(dir: &str, name: &str) -> Worker {
    Worker {
        dir: dir.into(),
        name: name.into(),
        finish_ms: 0,
    }
}

#[process_runtime::main]
fn main() -> Result<(), ProcessError> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("a directory");
    let mode = args.next().expect("a mode");
    match mode.as_str() {
        "signal" | "two-signals" => {
            let limit = if mode == "signal" { 1 } else { 20 };
            let tree = Tree::start(&dir, Duration::from_secs(limit))?;
            report(&dir, "ready", "ready");
            let results = tree.results();
            report(&dir, "main.returned", &results);
        }
        "told" | "told-wait" | "told-async" => {
            // Asking before any signal can come.
            assert!(!process_runtime::shutdown_requested());
            let tree = Tree::start(&dir, Duration::from_secs(1))?;
            report(&dir, "ready", "ready");
            if mode == "told" {
                while !process_runtime::shutdown_requested() {
                    std::thread::sleep(Duration::from_millis(10));
                }
            } else if mode == "told-wait" {
                process_runtime::wait_for_shutdown();
            } else {
                block_on(process_runtime::wait_for_shutdown_async());
            }
            let refused = worker(&dir, "late").start().map(|_| ());
            let results = tree.results();
            report(
                &dir,
                "results",
                &format!("{results}start during the shutdown: {refused:?}\n"),
            );
        }
        "on-demand" => {
            let tree = Tree::start(&dir, Duration::from_secs(1))?;
            report(&dir, "ready", "ready");
            let began = Instant::now();
            process_runtime::shutdown();
            let took = began.elapsed();
            let alive = [
                tree.worker.is_alive(),
                tree.nested.is_alive(),
                tree.daemon.is_alive(),
                tree.hung.is_alive(),
            ];
            let results = tree.results();
            // The runtime starts processes again once the shutdown returned.
            let again = worker(&dir, "again").start()?;
            pid_of(&dir, "again");
            again.stop();
            report(
                &dir,
                "results",
                &format!(
                    "{results}alive after: {alive:?}\nshutdown took {} ms\nagain: {:?}\n\
                     requested: {}\n",
                    took.as_millis(),
                    again.result(),
                    process_runtime::shutdown_requested()
                ),
            );
        }
        "child-term" => {
            let worker = worker(&dir, "worker").start()?;
            pid_of(&dir, "worker");
            report(&dir, "ready", "ready");
            let result = worker.result();
            report(
                &dir,
                "results",
                &format!("{result:?}\nexit code: {:?}\n", worker.exit_code()),
            );
        }
        "pool-run" => {
            let pool = Pool::new(1)?;
            let pooled = worker(&dir, "pooled");
            let running = std::thread::spawn(move || pool.run([pooled]));
            pid_of(&dir, "pooled");
            report(&dir, "ready", "ready");
            process_runtime::shutdown();
            let outcomes = running.join().expect("the pool's caller");
            report(&dir, "results", &format!("{outcomes:?}\n"));
        }
        "pool-idle" => {
            // "told", or "told-late": told, and the next call comes a while after the
            // shutdown began, once the workers it quit have reported.
            let how = args.next();
            let told = how.as_deref().is_some_and(|h| h.starts_with("told"));
            let late = how.as_deref() == Some("told-late");
            let pool = Pool::new(2)?;
            let before: Vec<_> = pool.map(|x: u64| x + 1, 0..10);
            // The workers that ran them say who they are.
            let mut workers: Vec<u32> = pool
                .map(|_: u64| std::process::id(), 0..10)
                .into_iter()
                .collect::<Result<_, _>>()?;
            workers.sort_unstable();
            workers.dedup();
            let workers: Vec<String> = workers.iter().map(u32::to_string).collect();
            report(&dir, "workers", &workers.join(" "));
            report(&dir, "ready", "ready");
            if told {
                process_runtime::wait_for_shutdown();
                if late {
                    std::thread::sleep(Duration::from_millis(100));
                }
                let after: Vec<_> = pool.map(|x: u64| x * 2, 0..3);
                report(&dir, "results", &format!("{before:?}\n{after:?}\n"));
            } else {
                loop {
                    std::thread::park();
                }
            }
        }
        other => panic!("unknown mode {other}"),
    }
    Ok(())
}

/// Runs `future` on this thread, parked until its waker unparks it.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}
