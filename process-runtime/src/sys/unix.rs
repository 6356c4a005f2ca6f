//! Unix: socket pairs, descriptor inheritance, process groups, signals.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;

use crate::Exit;

/// The binary a child is started from. On Linux `/proc/self/exe` names the running
/// file even if it was replaced on disk since (a rebuild never mixes two builds).
pub(crate) fn current_exe() -> io::Result<PathBuf> {
    if cfg!(target_os = "linux") {
        Ok(PathBuf::from("/proc/self/exe"))
    } else {
        std::env::current_exe()
    }
}

/// A connected pair: (parent's end, child's end), both close-on-exec.
pub(crate) fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = UnixStream::pair()?;
    Ok((a.into(), b.into()))
}

/// Sets or clears close-on-exec.
pub(crate) fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we borrow; F_GETFD/F_SETFD touch only its flags.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFD);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let new = if on {
            flags | libc::FD_CLOEXEC
        } else {
            flags & !libc::FD_CLOEXEC
        };
        if new != flags && libc::fcntl(raw, libc::F_SETFD, new) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Takes ownership of an inherited descriptor number, after checking it is open.
pub(crate) fn adopt_fd(raw: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor.
    if unsafe { libc::fcntl(raw, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open and was handed to this process for it alone; the
    // marker that named it was removed from the environment, so nothing else adopts it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Child-side setup before anything else runs: die with the parent, and behave as a
/// Rust `main` would about SIGPIPE.
///
/// Returns false if the parent is already gone (it died between spawning this child
/// and the parent-death signal being armed: the race the check after `prctl` closes).
pub(crate) fn child_init(expected_parent: u32) -> bool {
    // SAFETY: plain signal disposition change; the Rust runtime does the same before main,
    // but a child entered from a constructor runs before that.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number; no memory is touched.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    parent_pid() == expected_parent
}

/// The parent's process id.
pub(crate) fn parent_pid() -> u32 {
    std::os::unix::process::parent_id()
}

/// Sends SIGKILL to the whole process group led by `pid` (the child and whatever it
/// started in its group). A group that is already gone is not an error.
pub(crate) fn kill_group(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    // SAFETY: killpg only sends a signal.
    if unsafe { libc::killpg(pid, libc::SIGKILL) } < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(e);
        }
    }
    Ok(())
}

/// How a reaped child ended.
pub(crate) fn exit_of(status: ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(sig)) => Exit::Signal(sig),
        (None, None) => Exit::Code(-1),
    }
}

/// Ends the process at once, without running destructors, atexit handlers or flushing
/// stdio buffers: used when the parent is gone and nothing is left to report to.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Whether the child `pid` has exited, without reaping it: the zombie keeps its pid
/// (and so its process group id) reserved, so the group can still be signalled
/// safely afterwards.
pub(crate) fn has_exited(pid: u32) -> io::Result<bool> {
    let id = libc::id_t::from(pid);
    // SAFETY: siginfo_t is plain data; waitid fills it in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid with WNOWAIT only reports the state; `info` is a valid out-pointer.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            id,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: si_pid is set by waitid when a child changed state, and zeroed otherwise.
    Ok(unsafe { info.si_pid() } != 0)
}

/// Blocks until the child `pid` has exited (without reaping it) or `timeout` passes;
/// returns whether it exited. On Linux a pidfd makes this one `poll`; elsewhere, or on
/// kernels without pidfds, it checks with `waitid` in short, growing sleeps.
pub(crate) fn wait_exited(pid: u32, timeout: std::time::Duration) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    if let Some(exited) = wait_exited_pidfd(pid, timeout)? {
        return Ok(exited);
    }
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_micros(20);
    loop {
        if has_exited(pid)? {
            return Ok(true);
        }
        if started.elapsed() >= timeout {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(5));
    }
}

/// `None` when pidfds are not available here.
#[cfg(target_os = "linux")]
fn wait_exited_pidfd(pid: u32, timeout: std::time::Duration) -> io::Result<Option<bool>> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let Ok(raw) = RawFd::try_from(raw) else {
        return Ok(None);
    };
    if raw < 0 {
        return Ok(None);
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc > 0 {
            return Ok(Some(true));
        }
        if rc == 0 {
            return Ok(Some(false));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
