//! The node: every process of one program tree, addressed by [`Pid`].
//!
//! This is the BEAM-style process layer (Erlang's `erlang:self/0`, `!`, `receive`)
//! over OS processes. See the README's "The node" for the whole picture.

pub(crate) mod local;

pub use process_core::Pid;

/// This process's [`Pid`]: `<0.0>` in the root (the program's own process, where
/// `main` runs), the pid its parent gave it in a child.
#[must_use]
pub fn self_pid() -> Pid {
    local::self_pid()
}

/// The processes of the node this process knows to be alive: itself and the
/// processes it started that have not ended, in the order they were started. In the
/// root, every process the root started.
#[must_use]
pub fn processes() -> Vec<Pid> {
    let mut all = vec![self_pid()];
    all.extend(local::child_pids());
    all
}

/// Whether `pid` is this process, or a process it started that has not ended yet.
/// A process whose end is published (its handle's `result()` has returned, or would at
/// once) is not alive.
#[must_use]
pub fn is_alive(pid: Pid) -> bool {
    pid == self_pid()
        || (pid.parent() == Some(self_pid()) && local::child(pid.__number()).is_some())
}
