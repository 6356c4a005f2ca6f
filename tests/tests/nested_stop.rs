//! A stop reaches the whole tree: a process stopped by its parent passes the stop on to
//! the processes it started, and waits until they have ended before its own
//! `on_finish`. A process that ends by itself leaves them alone.

use std::path::Path;
use std::time::{Duration, Instant};

use process_runtime::prelude::*;
use process_runtime_tests::{gone_within, wait_for_file, write_atomically, Scratch};
use serde::{Deserialize, Serialize};

/// Laps of 10 ms until stopped; its `on_finish` takes 300 ms, then writes
/// `<dir>/leaf.finished`.
#[derive(Process, Serialize, Deserialize)]
struct Leaf {
    dir: String,
}

impl Lifecycle for Leaf {
    type Output = ();
    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        if cx.lap() == 0 {
            write_atomically(&format!("{}/leaf.pid", self.dir), &cx.pid().to_string())?;
        }
        Ok(())
    }
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(10));
        Ok(())
    }
    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(300));
        write_atomically(&format!("{}/leaf.finished", self.dir), "ok")?;
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Starts a [`Leaf`] in its first `main_loop`. With `wait_on_leaf`, every later
/// `main_loop` waits until the leaf has ended (only a stop passed on to the leaf ends
/// that wait); otherwise it runs laps of 10 ms. Its result says how the leaf was when
/// its `on_finish` began.
#[derive(Process, Serialize, Deserialize)]
struct Parent {
    dir: String,
    wait_on_leaf: bool,
    #[serde(skip)]
    leaf: Option<Handle<()>>,
    #[serde(skip)]
    seen: String,
}

impl Lifecycle for Parent {
    type Output = String;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        match &self.leaf {
            None => {
                self.leaf = Some(
                    Leaf {
                        dir: self.dir.clone(),
                    }
                    .start()?,
                )
            }
            Some(leaf) if self.wait_on_leaf => leaf.wait(),
            Some(_) => std::thread::sleep(Duration::from_millis(10)),
        }
        Ok(())
    }
    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        let leaf = self.leaf.as_ref().ok_or("no leaf")?;
        let finished = Path::new(&format!("{}/leaf.finished", self.dir)).exists();
        self.seen = format!(
            "leaf alive: {}, leaf finished: {finished}, leaf result: {:?}",
            leaf.is_alive(),
            leaf.result_timeout(Duration::ZERO)
        );
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<String, BoxError> {
        Ok(self.seen.clone())
    }
}

/// A [`Parent`] writing to `dir`, with no leaf yet.
fn parent(dir: &Scratch, wait_on_leaf: bool) -> Parent {
    Parent {
        dir: dir.path(),
        wait_on_leaf,
        leaf: None,
        seen: String::new(),
    }
}

fn leaf_pid(dir: &Scratch) -> u32 {
    wait_for_file(&dir.file("leaf.pid"), Duration::from_secs(20))
        .expect("the parent started its leaf")
        .parse()
        .unwrap()
}

#[test]
fn a_process_stopped_by_its_parent_stops_its_children_before_its_on_finish() {
    // The parent's main_loop waits on the leaf: only a stop passed on at once (not at
    // its on_finish, which it never reaches otherwise) ends it.
    let dir = Scratch::new("nested-stop");
    let h = parent(&dir, true).start().unwrap();
    let leaf = leaf_pid(&dir);
    let stopped = Instant::now();
    h.stop();
    assert_eq!(
        h.result().as_deref(),
        Ok("leaf alive: false, leaf finished: true, leaf result: Some(Ok(()))")
    );
    let took = stopped.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(gone_within(leaf, Duration::from_secs(1)));
}

#[test]
fn the_wait_for_children_happens_before_on_finish_even_when_the_loop_ends_first() {
    // The parent laps by itself: when its stop is seen, the leaf is still in its 300 ms
    // on_finish, which the parent waits for before its own.
    let dir = Scratch::new("nested-stop-laps");
    let h = parent(&dir, false).start().unwrap();
    let leaf = leaf_pid(&dir);
    h.stop();
    assert_eq!(
        h.result().as_deref(),
        Ok("leaf alive: false, leaf finished: true, leaf result: Some(Ok(()))")
    );
    assert!(gone_within(leaf, Duration::from_secs(1)));
}

#[test]
fn a_process_that_ends_by_itself_leaves_its_children_alone() {
    let dir = Scratch::new("nested-no-stop");
    let h = parent(&dir, false)
        .start_with(Parent::config().with_num_loops(Some(30)))
        .unwrap();
    let leaf = leaf_pid(&dir);
    assert_eq!(
        h.result().as_deref(),
        Ok("leaf alive: true, leaf finished: false, leaf result: None")
    );
    // It dies with its parent, as before (the parent-death signal).
    assert!(gone_within(leaf, Duration::from_secs(1)));
}

/// The voluntary context switches of every thread of process `pid` so far.
#[cfg(target_os = "linux")]
fn voluntary_switches(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the process is alive");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .filter_map(|n| n.trim().parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

#[cfg(target_os = "linux")]
#[test]
fn a_waiting_process_with_children_is_not_woken_until_its_parent_stops_it() {
    // The parent waits on its leaf: every thread it has is blocked until the stop, the
    // one that watches for it included (a watcher that polled every 20 ms would switch
    // some 50 times a second).
    let dir = Scratch::new("nested-stop-idle");
    let h = parent(&dir, true).start().unwrap();
    leaf_pid(&dir);
    let pid = h.id().os_pid().expect("the parent is running");
    // Its start-up settles first.
    std::thread::sleep(Duration::from_millis(200));
    let before = voluntary_switches(pid);
    std::thread::sleep(Duration::from_secs(1));
    let woken = voluntary_switches(pid) - before;
    assert!(woken < 10, "{woken} wake-ups in 1 s");
    let stopped = Instant::now();
    h.stop();
    assert!(h.result().is_ok());
    assert!(stopped.elapsed() < Duration::from_secs(5));
}
