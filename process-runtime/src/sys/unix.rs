//! Unix: socket pairs, descriptor inheritance, process groups, signals, shared mappings.
//!
//! SIGTERM and SIGINT are caught through `signal-hook`: its handler is async-signal
//! safe (it writes a byte to a self-pipe), and what a signal means is decided on a
//! thread that reads that pipe.
//!
//! `nix` makes the calls where it covers them; raw `libc` remains only for what it does
//! not (`pidfd_open`, `_exit`, and `waitid` with `WNOWAIT` outside Linux).

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use interprocess::local_socket::Stream;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::Exit;

fn current_exe() -> io::Result<PathBuf> {
    if cfg!(target_os = "linux") {
        Ok(PathBuf::from("/proc/self/exe"))
    } else {
        std::env::current_exe()
    }
}

pub(super) fn child_command() -> io::Result<Command> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(current_exe()?);
    if let Some(arg0) = std::env::args_os().next() {
        cmd.arg0(arg0);
    }
    cmd.process_group(0);
    Ok(cmd)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn on_main_thread() -> bool {
    nix::unistd::gettid() == nix::unistd::getpid()
}

/// Elsewhere the spawner thread serves every start, which is always correct.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn on_main_thread() -> bool {
    false
}

pub(super) fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = UnixStream::pair()?;
    Ok((a.into(), b.into()))
}

pub(super) fn local_stream(fd: OwnedFd) -> Stream {
    Stream::from(interprocess::os::unix::uds_local_socket::Stream::from(fd))
}

pub(super) fn poll_readable(stream: &Stream, timeout: Duration) -> io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let Stream::UdSocket(socket) = stream;
    let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
    let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    loop {
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(n) => return Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

pub(super) fn poll_readable_any(streams: &[&Stream], timeout: Duration) -> io::Result<Vec<bool>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds: Vec<PollFd<'_>> = streams
        .iter()
        .map(|stream| PollFd::new(stream_fd(stream), PollFlags::POLLIN))
        .collect();
    let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    loop {
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(fds
        .iter()
        .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
        .collect())
}

pub(super) fn stream_fd(stream: &Stream) -> BorrowedFd<'_> {
    let Stream::UdSocket(socket) = stream;
    socket.as_fd()
}

pub(super) fn shutdown(stream: &Stream) -> io::Result<()> {
    use nix::sys::socket::{shutdown, Shutdown};
    use std::os::fd::AsRawFd;
    match shutdown(stream_fd(stream).as_raw_fd(), Shutdown::Both) {
        Ok(()) | Err(nix::errno::Errno::ENOTCONN) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn recv_dontwait(stream: &Stream, buf: &mut [u8]) -> io::Result<usize> {
    use nix::sys::socket::{recv, MsgFlags};
    use std::os::fd::AsRawFd;
    loop {
        match recv(stream_fd(stream).as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
            Ok(n) => return Ok(n),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

pub(super) fn send_dontwait(stream: &Stream, buf: &[u8]) -> io::Result<usize> {
    use nix::sys::socket::{send, MsgFlags};
    use std::os::fd::AsRawFd;
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
    loop {
        match send(stream_fd(stream).as_raw_fd(), buf, flags) {
            Ok(n) => return Ok(n),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(target_os = "linux")]
pub(super) fn exit_watch(pid: u32) -> io::Result<Option<OwnedFd>> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    match RawFd::try_from(raw) {
        // SAFETY: a fresh descriptor that nothing else owns.
        Ok(raw) if raw >= 0 => Ok(Some(unsafe { OwnedFd::from_raw_fd(raw) })),
        _ => Ok(None),
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn exit_watch(_pid: u32) -> io::Result<Option<OwnedFd>> {
    Ok(None)
}

pub(super) fn exited(pid: u32) -> io::Result<bool> {
    has_exited(pid)
}

pub(super) fn parent_pid() -> u32 {
    std::os::unix::process::parent_id()
}

pub(super) fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = FdFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFD)?);
    let mut new = flags;
    new.set(FdFlag::FD_CLOEXEC, on);
    if new != flags {
        fcntl(fd, FcntlArg::F_SETFD(new))?;
    }
    Ok(())
}

pub(super) fn adopt_fd(raw: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor, and fails if it is not open.
    if unsafe { libc::fcntl(raw, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open and was handed to this process for it alone; the
    // marker that named it was removed from the environment, so nothing else adopts it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

pub(super) fn child_init(expected_parent: u32) -> bool {
    // SAFETY: ignoring a signal installs no handler code. A child entered from a
    // constructor runs before the Rust runtime would have done the same.
    unsafe {
        let _ = nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_ok() {
        PARENT_DEATH_SIGNAL.store(true, Ordering::Relaxed);
    }
    std::os::unix::process::parent_id() == expected_parent
}

/// Set when `child_init` armed the parent-death signal.
static PARENT_DEATH_SIGNAL: AtomicBool = AtomicBool::new(false);

pub(super) fn parent_death_signal_armed() -> bool {
    PARENT_DEATH_SIGNAL.load(Ordering::Relaxed)
}

pub(super) fn kill_group(pid: u32) -> io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    match killpg(Pid::from_raw(pid), Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn exit_of(status: ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(sig)) => Exit::Signal(sig),
        (None, None) => Exit::Code(-1),
    }
}

pub(super) fn killed_exit() -> Exit {
    Exit::Signal(Signal::SIGKILL as i32)
}

pub(super) fn signal_name(number: i32) -> Option<&'static str> {
    Signal::try_from(number).ok().map(Signal::as_str)
}

pub(super) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

pub(super) fn on_termination_signals(on_signal: fn(i32)) -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;
    // The signals are registered on the thread that will read them, once it exists: a
    // registration whose reader could not be started would leave the two signals
    // swallowed (signal-hook cannot put the default action back).
    let (registered, outcome) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("process-runtime-signals".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let mut signals = match Signals::new([SIGTERM, SIGINT]) {
                Ok(signals) => {
                    let _ = registered.send(Ok(()));
                    signals
                }
                Err(e) => {
                    let _ = registered.send(Err(e));
                    return;
                }
            };
            for signal in signals.forever() {
                on_signal(signal);
            }
        })?;
    outcome
        .recv()
        .map_err(|_| io::Error::other("the signal thread ended before it was ready"))?
}

pub(super) fn exit_code_after_signal(number: i32) -> i32 {
    128 + number
}

pub(super) fn wait_exited(pid: u32, timeout: Duration) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    if let Some(exited) = wait_exited_pidfd(pid, timeout)? {
        return Ok(exited);
    }
    let started = Instant::now();
    let mut pause = Duration::from_micros(20);
    loop {
        if has_exited(pid)? {
            return Ok(true);
        }
        if started.elapsed() >= timeout {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// Whether the child `pid` has exited, without reaping it.
fn has_exited(pid: u32) -> io::Result<bool> {
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

/// One `poll` on a pidfd; `None` when the kernel has no pidfds.
#[cfg(target_os = "linux")]
fn wait_exited_pidfd(pid: u32, timeout: Duration) -> io::Result<Option<bool>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
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
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) => return Ok(Some(false)),
            Ok(_) => return Ok(Some(true)),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// A region of memory shared between a parent and its child: made by the parent,
/// handed to the child as a descriptor, mapped by both.
#[derive(Debug)]
pub(crate) struct SharedMapping {
    ptr: NonNull<u8>,
    len: NonZeroUsize,
}

// SAFETY: the mapping is plain memory owned by this value until drop; what is stored in
// it and how it is accessed (atomics, or reads after the other side is gone) is the
// business of the types built on it.
unsafe impl Send for SharedMapping {}
// SAFETY: as above.
unsafe impl Sync for SharedMapping {}

impl SharedMapping {
    /// A fresh zero-filled mapping of `len` bytes, with the descriptor for the child.
    pub(crate) fn create(len: usize) -> io::Result<(Self, OwnedFd)> {
        let fd = shared_file()?;
        let size = libc::off_t::try_from(len).map_err(|_| io::Error::other("mapping too large"))?;
        nix::unistd::ftruncate(&fd, size)?;
        let mapping = Self::open(&fd, len)?;
        Ok((mapping, fd))
    }

    /// Maps `len` bytes of the file behind an inherited descriptor (the child's side).
    pub(crate) fn open(fd: &OwnedFd, len: usize) -> io::Result<Self> {
        let len = NonZeroUsize::new(len).ok_or_else(|| io::Error::other("empty mapping"))?;
        // SAFETY: a fresh shared mapping of a descriptor we hold; nothing else is at the
        // address the kernel picks.
        let ptr = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                fd,
                0,
            )?
        };
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }

    /// The first byte: page-aligned, valid for `len` bytes until drop.
    pub(crate) fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len.get()
    }

    /// Keeps the mapping for the rest of the process's life.
    pub(crate) fn leak(self) -> NonNull<u8> {
        let ptr = self.ptr;
        std::mem::forget(self);
        ptr
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping made in `open`; references into it borrow `self`.
        let _ = unsafe { munmap(self.ptr.cast(), self.len.get()) };
    }
}

pub(super) fn shared_len(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let size = nix::sys::stat::fstat(fd)?.st_size;
    usize::try_from(size).map_err(|_| io::Error::other(format!("a shared file of {size} bytes")))
}

#[cfg(target_os = "linux")]
fn shared_file() -> io::Result<OwnedFd> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    Ok(memfd_create(
        c"process-runtime-beacon",
        MFdFlags::MFD_CLOEXEC,
    )?)
}

#[cfg(not(target_os = "linux"))]
fn shared_file() -> io::Result<OwnedFd> {
    // Elsewhere: a temporary file created exclusively and unlinked at once, so only the
    // descriptor remains.
    use std::os::unix::fs::OpenOptionsExt;
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
    let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let path = std::env::temp_dir().join(format!(".process-runtime-beacon-{name}"));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file.into())
}

/// Linux waits on a word of shared memory with `futex`.
#[cfg(target_os = "linux")]
pub(super) const SHARED_WAIT: bool = true;

/// Other Unix systems have no waiting on a word across processes that we use.
#[cfg(not(target_os = "linux"))]
pub(super) const SHARED_WAIT: bool = false;

#[cfg(target_os = "linux")]
pub(super) fn wait_on_word(
    word: &std::sync::atomic::AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
) {
    let limit = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        // Below a billion: fits a c_long of any width.
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let limit_ptr = limit.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: FUTEX_WAIT reads the aligned 32-bit word, valid for the call (the caller
    // holds a reference), and takes a relative timeout or null. Not FUTEX_PRIVATE_FLAG:
    // the word is in memory shared with another process, whose wake must reach this
    // wait. Any outcome (woken, the value changed, timed out, interrupted) returns
    // to a caller that looks again.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            limit_ptr,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn wait_on_word(_: &std::sync::atomic::AtomicU32, _: u32, timeout: Option<Duration>) {
    // Never called where SHARED_WAIT is false; a short sleep is the safe answer.
    std::thread::sleep(
        timeout
            .unwrap_or(Duration::from_millis(1))
            .min(Duration::from_millis(1)),
    );
}

#[cfg(target_os = "linux")]
pub(super) fn wake_word(word: &std::sync::atomic::AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the word's address as a key; it wakes every waiter
    // (of any process: not private, see `wait_on_word`).
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn wake_word(_: &std::sync::atomic::AtomicU32) {}
/// Room for the most descriptors one `sendmsg` may carry (`SCM_MAX_FD`, 253 on Linux):
/// `CMSG_SPACE(253 * 4)` is 1032 bytes on 64-bit Linux; 8-byte words keep it aligned.
const CONTROL_WORDS: usize = 136;

pub(super) const MAX_PASSED_FDS: usize = 253;

pub(super) fn recv_with_fds(
    stream: &Stream,
    buf: &mut [u8],
    dontwait: bool,
    fds: &mut Vec<OwnedFd>,
) -> io::Result<(usize, bool)> {
    use std::mem::MaybeUninit;
    use std::os::fd::AsRawFd;
    let socket = stream_fd(stream).as_raw_fd();
    let mut control = MaybeUninit::<[u64; CONTROL_WORDS]>::uninit();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Close-on-exec from the start: a descriptor received while another thread spawns a
    // child must not leak into it.
    let mut flags = libc::MSG_CMSG_CLOEXEC;
    if dontwait {
        flags |= libc::MSG_DONTWAIT;
    }
    loop {
        // SAFETY: an all-zero msghdr is valid; the fields set point to live buffers of
        // the lengths given.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = (CONTROL_WORDS * 8) as _;
        // SAFETY: `msg` describes valid buffers; the kernel writes within them.
        let n = unsafe { libc::recvmsg(socket, &mut msg, flags) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if msg.msg_controllen > 0 {
            // SAFETY: the kernel filled `msg_controllen` bytes of the control buffer with
            // well-formed headers, which the CMSG macros walk.
            unsafe { take_rights(&msg, fds) };
        }
        let truncated = msg.msg_flags & libc::MSG_CTRUNC != 0;
        return Ok((n as usize, truncated));
    }
}

/// Adopts the descriptors of every `SCM_RIGHTS` header in `msg`'s control data.
///
/// # Safety
/// `msg`'s control data must be what `recvmsg` wrote.
unsafe fn take_rights(msg: &libc::msghdr, fds: &mut Vec<OwnedFd>) {
    const INT: usize = std::mem::size_of::<libc::c_int>();
    // SAFETY: the headers are the kernel's, walked with its own macros; each
    // SCM_RIGHTS payload holds `cmsg_len - CMSG_LEN(0)` bytes of descriptors, now ours.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let bytes = header.cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / INT {
                    let raw = data.add(i * INT).cast::<libc::c_int>().read_unaligned();
                    fds.push(OwnedFd::from_raw_fd(raw));
                }
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
}

pub(super) fn send_with_fds(
    stream: &Stream,
    bufs: &[io::IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
    dontwait: bool,
) -> io::Result<usize> {
    use std::mem::MaybeUninit;
    use std::os::fd::AsRawFd;
    if fds.len() > MAX_PASSED_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} descriptors, more than the {MAX_PASSED_FDS} one frame may carry",
                fds.len()
            ),
        ));
    }
    let socket = stream_fd(stream).as_raw_fd();
    let mut control = MaybeUninit::<[u64; CONTROL_WORDS]>::zeroed();
    let rights = std::mem::size_of_val(fds);
    let mut flags = libc::MSG_NOSIGNAL;
    if dontwait {
        flags |= libc::MSG_DONTWAIT;
    }
    loop {
        // SAFETY: as in `recv_with_fds`; `IoSlice` is guaranteed to be an `iovec` on
        // Unix, and the kernel only reads the buffers.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = bufs.as_ptr().cast_mut().cast();
        msg.msg_iovlen = bufs.len() as _;
        if !fds.is_empty() {
            msg.msg_control = control.as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE of at most 253 descriptors fits in the buffer (see
            // CONTROL_WORDS); the header written is the first and only one.
            unsafe {
                msg.msg_controllen = libc::CMSG_SPACE(rights as u32) as _;
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(rights as u32) as _;
                let data = libc::CMSG_DATA(cmsg);
                for (i, fd) in fds.iter().enumerate() {
                    data.add(i * std::mem::size_of::<libc::c_int>())
                        .cast::<libc::c_int>()
                        .write_unaligned(fd.as_raw_fd());
                }
            }
        }
        // SAFETY: `msg` describes valid buffers.
        let n = unsafe { libc::sendmsg(socket, &msg, flags) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(n as usize);
    }
}
