//! Helpers shared by the end-to-end tests: scratch directories and process counts.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh, empty directory unique to this call, removed by the caller's `Drop` guard.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Creates a new directory under the system's temporary directory.
    ///
    /// # Panics
    /// If the directory cannot be created.
    #[must_use]
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "process-runtime-test-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create scratch directory");
        Self { path }
    }

    /// The directory's path, as a string a process state can carry.
    #[must_use]
    pub fn path(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// A file inside the directory.
    #[must_use]
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Whether a process with this id exists and is not a zombie.
#[must_use]
pub fn process_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The number of open descriptors of this process.
///
/// # Panics
/// If `/proc/self/fd` cannot be read.
#[must_use]
pub fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// This process's open descriptors with what each refers to (`3 -> socket:[1234]`), for
/// the message of a failed descriptor count.
///
/// # Panics
/// If `/proc/self/fd` cannot be read.
#[must_use]
pub fn describe_descriptors() -> String {
    let mut fds: Vec<(u32, String)> = std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let fd = entry.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            Some((fd, target.display().to_string()))
        })
        .collect();
    fds.sort();
    fds.iter()
        .map(|(fd, target)| format!("{fd} -> {target}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One process of this machine as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcInfo {
    /// Its process id.
    pub pid: u32,
    /// Its parent's process id.
    pub ppid: u32,
    /// The state letter (`R`, `S`, `Z`, ...).
    pub state: char,
}

/// Reads `/proc/<pid>/stat`; `None` when the process does not exist (any more).
#[must_use]
pub fn proc_info(pid: u32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the parenthesised command name: state, ppid, ...
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some(ProcInfo { pid, ppid, state })
}

/// Every process whose parent is this process, in any state (zombies included).
#[must_use]
pub fn child_processes() -> Vec<ProcInfo> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(proc_info)
        .filter(|p| p.ppid == me)
        .collect()
}

/// The children of this process that are zombies (exited, not reaped).
#[must_use]
pub fn zombie_children() -> Vec<u32> {
    child_processes()
        .into_iter()
        .filter(|p| p.state == 'Z')
        .map(|p| p.pid)
        .collect()
}

/// Whether `pid` is neither running nor a child of ours left unreaped.
#[must_use]
pub fn reaped(pid: u32) -> bool {
    let me = std::process::id();
    !process_running(pid) && !matches!(proc_info(pid), Some(p) if p.ppid == me)
}

/// Polls until `pid` no longer runs (a zombie counts as gone); returns whether it
/// stopped running within `limit`.
#[must_use]
pub fn gone_within(pid: u32, limit: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if !process_running(pid) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Polls until `path` exists and is not empty, then returns its contents; `None` after
/// `limit`. Writers should write a temporary file and rename it, so that a partial
/// write is never read.
#[must_use]
pub fn wait_for_file(path: &std::path::Path, limit: std::time::Duration) -> Option<String> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if !s.is_empty() {
                return Some(s);
            }
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Writes `contents` to `path` atomically (a temporary file renamed into place).
///
/// # Errors
/// If the file cannot be written or renamed.
pub fn write_atomically(path: &str, contents: &str) -> std::io::Result<()> {
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(tmp, path)
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`, `VmSize`), in kB.
#[must_use]
pub fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Sleeps for ever (in chunks, so that a stray wake-up changes nothing).
pub fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Turns off core dumps for this process, so that crash tests leave no core file.
pub fn no_core_dumps() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct we pass; no other memory is touched.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
    }
}
