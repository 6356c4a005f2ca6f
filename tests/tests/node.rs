//! The node, end to end: pids, `node::send`/`node::receive`, the registry and monitors,
//! with real child processes. Where a test ports a case of Erlang/OTP's own suites
//! (`erts/emulator/test/process_SUITE.erl`, `monitor_SUITE.erl`), it has that case's
//! name.
//!
//! Every process here has a section timeout, so that a test that fails by waiting for
//! ever ends as a failure instead of a hang.

use std::collections::HashSet;

use process_runtime::node::{self, Pid};
use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------
// Pids.

/// What a process knows of its own identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Ids {
    id: Pid,
    parent_id: Pid,
    self_pid: Pid,
    os_pid: Option<u32>,
    parent_os_pid: Option<u32>,
    children: Vec<Ids>,
}

/// Reports its ids, after starting `nest` levels of processes below it.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct Whoami {
    nest: u32,
}

impl Lifecycle for Whoami {
    type Output = Ids;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<Ids, BoxError> {
        let mut children = Vec::new();
        if self.nest > 0 {
            let child = Whoami {
                nest: self.nest - 1,
            };
            for _ in 0..2 {
                let h = child.start()?;
                let ids = h.result()?;
                assert_eq!(ids.id, h.id());
                children.push(ids);
            }
        }
        Ok(Ids {
            id: cx.id(),
            parent_id: cx.parent_id(),
            self_pid: node::self_pid(),
            os_pid: node::self_pid().os_pid(),
            parent_os_pid: cx.parent_id().os_pid(),
            children,
        })
    }
}

/// Pids are paths from the root (`<0.0>`), the same in the handle, the context and
/// `node::self_pid()`; a child's parent is the process that started it, at every level;
/// no number is given out twice.
#[test]
fn self_pid_is_a_path_from_the_root() {
    assert_eq!(node::self_pid(), Pid::ROOT);
    assert_eq!(Pid::ROOT.to_string(), "<0.0>");
    assert_eq!(Pid::ROOT.os_pid(), Some(std::process::id()));
    let h = Whoami { nest: 2 }.start().unwrap();
    let os_pid = h.pid();
    assert_eq!(h.id().os_pid(), Some(os_pid));
    let ids = h.result().unwrap();
    assert_eq!(ids.id, h.id());
    assert_eq!(ids.self_pid, h.id());
    assert_eq!(ids.parent_id, Pid::ROOT);
    assert_eq!(ids.os_pid, Some(os_pid));
    assert_eq!(ids.parent_os_pid, Some(std::process::id()));
    assert!(h.id().to_string().starts_with("<0."), "{}", h.id());
    assert_eq!(h.id().parent(), Some(Pid::ROOT));
    // Ended: its OS pid is no longer known.
    assert_eq!(h.id().os_pid(), None);

    let mut seen = HashSet::new();
    fn walk(ids: &Ids, seen: &mut HashSet<Pid>) {
        assert!(seen.insert(ids.id), "{} given out twice", ids.id);
        assert_eq!(ids.self_pid, ids.id);
        for child in &ids.children {
            assert_eq!(child.parent_id, ids.id);
            assert_eq!(child.id.parent(), Some(ids.id));
            assert_eq!(child.parent_os_pid, ids.os_pid);
            walk(child, seen);
        }
    }
    walk(&ids, &mut seen);
    assert_eq!(seen.len(), 1 + 2 + 4);
    let grandchild = ids.children[1].children[0].id;
    assert_eq!(grandchild.depth(), 3);
    assert_eq!(
        grandchild.to_string(),
        format!("<0.{}.2.1>", h.id().to_string()[3..].trim_end_matches('>'))
    );
}

/// A pid names the process, not an attempt: a restarted process keeps its pid.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, lives = 2, timeout.loop = "30s")]
struct CrashOnce;

impl Lifecycle for CrashOnce {
    type Output = (Pid, u32);
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        if cx.attempt() == 1 {
            std::process::abort();
        }
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<(Pid, u32), BoxError> {
        Ok((node::self_pid(), cx.attempt()))
    }
}

#[test]
fn a_pid_survives_a_restart() {
    let h = CrashOnce.start().unwrap();
    assert_eq!(h.result().unwrap(), (h.id(), 2));
    let other = CrashOnce.start().unwrap();
    assert_ne!(other.id(), h.id());
    other.result().unwrap();
}
