//! Starting a child: the same binary, re-executed, from a thread that lives as long as
//! the process.
//!
//! Why that matters: Linux's parent-death signal fires when the *thread* that spawned a
//! child exits, not the process. A child spawned from a short-lived user thread would
//! be killed when that thread ends. The main thread lives as long as the process (when
//! `main` returns, the process exits), so a start made there spawns in place; a start
//! made on any other thread is handed to one long-lived spawner thread, at the price of
//! two thread wake-ups. (A thread known to outlive the child spawns in place too: an
//! OTP supervisor's own thread, which stops its children before it ends, spawns their
//! restarts with [`spawn_on_this_thread`].)
//!
//! Why no `fork` of our own and no `pre_exec`: `std::process::Command` uses
//! `posix_spawn` (vfork-like, no copy of the parent's page tables) as long as no
//! `pre_exec` closure is set, which keeps the spawn cost flat however large the parent
//! is. The child's socket end is handed over by clearing its close-on-exec flag in this
//! thread just before spawning, and the parent's copy is closed right after. Every spawn
//! of this library holds one lock across that window, so no other child of ours can
//! inherit it; a `Command` spawned by user code on another thread in that window could,
//! which is the price of staying on the posix_spawn path without hand-written
//! `posix_spawn` file actions.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Sender, SyncSender};
use std::sync::{Mutex, OnceLock};

use crate::sys;
use crate::wire::handoff::{Marker, MARKER, SECRET_LEN};

struct Request {
    child_end: OwnedFd,
    beacon: OwnedFd,
    secret: [u8; SECRET_LEN],
    extra_env: Vec<(String, String)>,
    reply: SyncSender<io::Result<Child>>,
}

/// Spawns a child that inherits `child_end` and `beacon`, through the spawner thread.
/// Both descriptors are closed in this process once the child has them.
pub(crate) fn spawn_child(
    child_end: OwnedFd,
    beacon: OwnedFd,
    secret: [u8; SECRET_LEN],
    extra_env: Vec<(String, String)>,
) -> io::Result<Child> {
    if sys::on_main_thread() {
        return spawn_here(&child_end, &beacon, &secret, &extra_env);
    }
    static SPAWNER: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("process-runtime-spawner".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                for req in rx {
                    let result =
                        spawn_here(&req.child_end, &req.beacon, &req.secret, &req.extra_env);
                    drop(req.child_end);
                    drop(req.beacon);
                    let _ = req.reply.send(result);
                }
            })
            .expect("cannot start the process-runtime spawner thread");
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::sync_channel(1);
    let request = Request {
        child_end,
        beacon,
        secret,
        extra_env,
        reply,
    };
    sender
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .send(request)
        .map_err(|_| io::Error::other("the process-runtime spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the process-runtime spawner thread is gone"))?
}

/// Spawns a child on the calling thread, which must live as long as the program (the
/// parent-death signal follows it). Both descriptors are closed here once the child
/// has them.
pub(crate) fn spawn_on_this_thread(
    child_end: OwnedFd,
    beacon: OwnedFd,
    secret: [u8; SECRET_LEN],
    extra_env: Vec<(String, String)>,
) -> io::Result<Child> {
    spawn_here(&child_end, &beacon, &secret, &extra_env)
}

fn spawn_here(
    child_end: &OwnedFd,
    beacon: &OwnedFd,
    secret: &[u8; SECRET_LEN],
    extra_env: &[(String, String)],
) -> io::Result<Child> {
    /// Held while a child's descriptors are inheritable, so that a child spawned at the
    /// same time on another thread cannot inherit them.
    static INHERITABLE: Mutex<()> = Mutex::new(());
    let marker = Marker {
        fd: child_end.as_raw_fd(),
        beacon_fd: beacon.as_raw_fd(),
        parent_pid: std::process::id(),
        secret: *secret,
    };
    let mut cmd = sys::child_command()?;
    cmd.env(MARKER, marker.encode())
        .envs(extra_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    let _window = INHERITABLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    sys::set_cloexec(child_end.as_fd(), false)?;
    if let Err(e) = sys::set_cloexec(beacon.as_fd(), false) {
        let _ = sys::set_cloexec(child_end.as_fd(), true);
        return Err(e);
    }
    crate::timeline::mark("posix_spawn begins");
    let spawned = cmd.spawn();
    crate::timeline::mark("posix_spawn returned");
    // Restore the flags even though the descriptors are closed right after: if the
    // close were ever delayed, no later spawn should inherit them.
    let _ = sys::set_cloexec(child_end.as_fd(), true);
    let _ = sys::set_cloexec(beacon.as_fd(), true);
    spawned
}
