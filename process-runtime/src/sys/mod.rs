//! The platform boundary: every call into the operating system goes through this module.
//!
//! This file is the interface a platform must provide, written out function by function
//! rather than re-exported wholesale, so that a second platform (`windows.rs` one day) is
//! told by the compiler exactly what it lacks. Nothing outside `sys/` names `libc`,
//! `nix` or a `cfg(target_os)`; `.ci/run` checks that.
//!
//! Unix is the only implementation today (`unix.rs`): a socket pair for the channel,
//! descriptors inherited across `exec`, a process group per child, `SIGKILL` for the
//! group, a pidfd (Linux) or `waitid` polling to learn of an exit without reaping it,
//! a shared mapping (`memfd` on Linux) for the beacon, and SIGTERM and SIGINT (through
//! `signal-hook`) for a graceful shutdown.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use interprocess::local_socket::Stream;

use crate::Exit;

#[cfg(unix)]
#[path = "unix.rs"]
mod imp;

#[cfg(not(unix))]
compile_error!(
    "process-runtime supports Unix targets only for now: the Windows transport \
     (named local sockets) is not written yet"
);

pub(crate) use imp::SharedMapping;

/// The size in bytes of the file behind a [`SharedMapping`]'s descriptor, as its maker
/// set it: how much of it the other side maps.
pub(crate) fn shared_len(fd: BorrowedFd<'_>) -> io::Result<usize> {
    imp::shared_len(fd)
}

/// A command that re-executes this binary as a child: named like this process
/// (`argv[0]`), in a process group of its own. Where the platform can name the running
/// file itself (Linux's `/proc/self/exe`), a rebuild on disk never mixes two builds.
pub(crate) fn child_command() -> io::Result<Command> {
    imp::child_command()
}

/// Whether the calling thread is the process's main thread, whose end is the
/// process's end (`main` returning exits the process).
pub(crate) fn on_main_thread() -> bool {
    imp::on_main_thread()
}

/// A connected pair of stream sockets, `(parent's end, child's end)`, both
/// close-on-exec.
pub(crate) fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    imp::socket_pair()
}

/// Wraps one end of [`socket_pair`] as an `interprocess` local-socket stream.
pub(crate) fn local_stream(fd: OwnedFd) -> Stream {
    imp::local_stream(fd)
}

/// Whether `stream` has bytes (or an end-of-file) to read, waiting up to `timeout`.
pub(crate) fn poll_readable(stream: &Stream, timeout: Duration) -> io::Result<bool> {
    imp::poll_readable(stream, timeout)
}

/// Which of `streams` have bytes (or an end-of-file) to read, waiting up to `timeout`
/// for the first: one flag per stream, all false when the time ran out.
pub(crate) fn poll_readable_any(streams: &[&Stream], timeout: Duration) -> io::Result<Vec<bool>> {
    imp::poll_readable_any(streams, timeout)
}

/// The socket's descriptor, to register it for readiness.
pub(crate) fn stream_fd(stream: &Stream) -> BorrowedFd<'_> {
    imp::stream_fd(stream)
}

/// Shuts both directions of `stream` down: a thread waiting on it wakes up.
pub(crate) fn shutdown(stream: &Stream) -> io::Result<()> {
    imp::shutdown(stream)
}

/// Reads what has arrived on `stream`, without waiting: `WouldBlock` when nothing has.
/// The socket itself stays blocking for the threads that write to it.
pub(crate) fn recv_dontwait(stream: &Stream, buf: &mut [u8]) -> io::Result<usize> {
    imp::recv_dontwait(stream, buf)
}

/// The most descriptors one frame may carry (Linux's `SCM_MAX_FD`).
pub(crate) const MAX_PASSED_FDS: usize = imp::MAX_PASSED_FDS;

/// Reads what has arrived on `stream` (without waiting when `dontwait`, else up to the
/// socket's read timeout), and the descriptors that came with it (`SCM_RIGHTS`),
/// appended to `fds` already close-on-exec. The second value is true when the kernel
/// had to drop descriptors that did not fit (`MSG_CTRUNC`): the peer broke the
/// protocol.
pub(crate) fn recv_with_fds(
    stream: &Stream,
    buf: &mut [u8],
    dontwait: bool,
    fds: &mut Vec<OwnedFd>,
) -> io::Result<(usize, bool)> {
    imp::recv_with_fds(stream, buf, dontwait, fds)
}

/// Writes `bufs` in one `sendmsg`, with `fds` attached to its first byte
/// (`SCM_RIGHTS`; the peer gets duplicates, these stay open), without `SIGPIPE`, and
/// without waiting when `dontwait`. Returns how many bytes went: the descriptors went
/// with them as soon as one did.
pub(crate) fn send_with_fds(
    stream: &Stream,
    bufs: &[io::IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
    dontwait: bool,
) -> io::Result<usize> {
    imp::send_with_fds(stream, bufs, fds, dontwait)
}

/// Writes what fits in `stream`'s buffer now, without waiting and without `SIGPIPE`.
pub(crate) fn send_dontwait(stream: &Stream, buf: &[u8]) -> io::Result<usize> {
    imp::send_dontwait(stream, buf)
}

/// A descriptor that becomes readable when the child `pid` exits (a pidfd), where the
/// platform has one; `None` elsewhere, and then [`exited`] is asked instead.
pub(crate) fn exit_watch(pid: u32) -> io::Result<Option<OwnedFd>> {
    imp::exit_watch(pid)
}

/// Whether the child `pid` has exited, without reaping it.
pub(crate) fn exited(pid: u32) -> io::Result<bool> {
    imp::exited(pid)
}

/// This process's parent's id, as the kernel sees it now (it changes when the parent
/// dies and the process is re-parented).
pub(crate) fn parent_pid() -> u32 {
    imp::parent_pid()
}

/// Sets or clears close-on-exec on `fd`.
pub(crate) fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    imp::set_cloexec(fd, on)
}

/// Takes ownership of an inherited descriptor number, after checking that it is open.
pub(crate) fn adopt_fd(raw: RawFd) -> io::Result<OwnedFd> {
    imp::adopt_fd(raw)
}

/// The child's first act: arrange to die with the parent, and treat a closed pipe as an
/// error rather than a signal (as a Rust `main` would). Returns false if the parent is
/// not `expected_parent` any more (it died before the arrangement was made).
pub(crate) fn child_init(expected_parent: u32) -> bool {
    imp::child_init(expected_parent)
}

/// Whether [`child_init`] armed a signal that kills this child when its parent dies
/// (Linux's parent-death signal). Where it did not, the child watches its socket for
/// end-of-file instead.
pub(crate) fn parent_death_signal_armed() -> bool {
    imp::parent_death_signal_armed()
}

/// Kills the whole process group led by `pid`. A group that is already gone is not an
/// error.
pub(crate) fn kill_group(pid: u32) -> io::Result<()> {
    imp::kill_group(pid)
}

/// How a reaped child ended.
pub(crate) fn exit_of(status: ExitStatus) -> Exit {
    imp::exit_of(status)
}

/// The exit a child is recorded with when its status cannot be read: killed.
pub(crate) fn killed_exit() -> Exit {
    imp::killed_exit()
}

/// The platform's name for signal `number` (`SIGABRT`), if it has one.
pub(crate) fn signal_name(number: i32) -> Option<&'static str> {
    imp::signal_name(number)
}

/// Ends this process at once with `code`: no destructors, no exit handlers, no flush.
pub(crate) fn exit_now(code: i32) -> ! {
    imp::exit_now(code)
}

/// Calls `on_signal` with the signal's number, on a thread of its own, each time this
/// process is asked to terminate: SIGTERM, or SIGINT (Ctrl-C). The handler itself only
/// records the signal and wakes that thread (through signal-hook's self-pipe), so
/// nothing that is not async-signal-safe runs in it. From then on these signals no
/// longer end the process by themselves: `on_signal` decides.
pub(crate) fn on_termination_signals(on_signal: fn(i32)) -> io::Result<()> {
    imp::on_termination_signals(on_signal)
}

/// The exit code of a program that ends because of signal `number`, in the shell's
/// convention: 128 + the number (143 after SIGTERM, 130 after SIGINT).
pub(crate) fn exit_code_after_signal(number: i32) -> i32 {
    imp::exit_code_after_signal(number)
}

/// Blocks until the child `pid` has exited, without reaping it, or `timeout` passes;
/// returns whether it exited. The unreaped child keeps its pid (and its process
/// group's id) reserved, so the group can still be signalled safely afterwards.
pub(crate) fn wait_exited(pid: u32, timeout: Duration) -> io::Result<bool> {
    imp::wait_exited(pid, timeout)
}

/// Whether [`wait_on_word`] waits for [`wake_word`] across processes on this platform;
/// where it does not, callers wait on a socket instead.
pub(crate) const SHARED_WAIT: bool = imp::SHARED_WAIT;

/// Waits while the 32-bit `word`, in memory shared with another process, still holds
/// `expected`: until a [`wake_word`] on it, `timeout`, or a spurious wake-up. Callers
/// look again at what they wait for in every case.
pub(crate) fn wait_on_word(
    word: &std::sync::atomic::AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
) {
    imp::wait_on_word(word, expected, timeout);
}

/// Wakes every thread, of any process, waiting on `word` in [`wait_on_word`].
pub(crate) fn wake_word(word: &std::sync::atomic::AtomicU32) {
    imp::wake_word(word);
}
