//! The beacon: one shared-memory word where the child says which section it is in.
//!
//! Section timeouts are on by default, so telling the parent where the child is must
//! cost nanoseconds, not a syscall per section. The parent creates a one-page shared
//! mapping (a `memfd` on Linux, an unlinked temporary file on other Unix systems),
//! hands its descriptor to the child like the socket, and both map it. At each section
//! start the engine stores `(entries << 3) | section` with a relaxed store; the
//! parent's supervisor samples the word on each tick and times how long it has stayed
//! the same. A changed word means a new section started, even if it is the same section
//! of the next lap, because the entry count moved. When the child dies, the last word
//! names the section it died in.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Section;

const MAP_LEN: usize = 4096;

/// The value before the engine entered any section.
pub(crate) const NOT_STARTED: u64 = 7;

/// Encodes entry number `n` into `section`.
#[inline(always)]
pub(crate) fn encode(n: u64, section: Section) -> u64 {
    (n << 3) | index(section)
}

#[inline(always)]
fn index(section: Section) -> u64 {
    match section {
        Section::Preloop => 0,
        Section::MainLoop => 1,
        Section::Postloop => 2,
        Section::OnFinish => 3,
        Section::Result => 4,
        _ => 5,
    }
}

/// The section a beacon word names, if any.
pub(crate) fn section_of(word: u64) -> Option<Section> {
    Some(match word & 7 {
        0 => Section::Preloop,
        1 => Section::MainLoop,
        2 => Section::Postloop,
        3 => Section::OnFinish,
        4 => Section::Result,
        5 => Section::Error,
        _ => return None,
    })
}

/// A shared one-page mapping holding the beacon word.
#[derive(Debug)]
pub(crate) struct Beacon {
    ptr: NonNull<AtomicU64>,
}

// SAFETY: the mapping is only accessed through an atomic, and lives until drop.
unsafe impl Send for Beacon {}
// SAFETY: as above; every access is an atomic operation.
unsafe impl Sync for Beacon {}

impl Beacon {
    /// Creates a fresh zero-filled mapping and returns it with the descriptor to hand
    /// to the child.
    pub(crate) fn create() -> io::Result<(Self, OwnedFd)> {
        let fd = shared_file()?;
        let len = libc::off_t::try_from(MAP_LEN).expect("one page fits off_t");
        // SAFETY: ftruncate on a descriptor we own.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let beacon = Self::map(&fd)?;
        beacon.word().store(NOT_STARTED, Ordering::Relaxed);
        Ok((beacon, fd))
    }

    /// Maps the page behind an inherited descriptor (the child's side).
    pub(crate) fn open(fd: &OwnedFd) -> io::Result<Self> {
        Self::map(fd)
    }

    fn map(fd: &OwnedFd) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of a descriptor we own; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MAP_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<AtomicU64>())
            .ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Self { ptr })
    }

    /// The shared word.
    pub(crate) fn word(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned, at least 8 bytes long, and valid until
        // drop; AtomicU64 has no invalid bit patterns.
        unsafe { self.ptr.as_ref() }
    }

    /// Keeps the mapping for the rest of the process's life (the child's side: the
    /// engine holds a `'static` reference to the word).
    pub(crate) fn leak(self) -> &'static AtomicU64 {
        let ptr = self.ptr;
        std::mem::forget(self);
        // SAFETY: the mapping is never unmapped now.
        unsafe { ptr.as_ref() }
    }
}

impl Drop for Beacon {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping made in `map`, which nothing references any more
        // (references borrow `self`).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), MAP_LEN);
        }
    }
}

#[cfg(target_os = "linux")]
fn shared_file() -> io::Result<OwnedFd> {
    // SAFETY: memfd_create with a static C string; the result is checked.
    let fd = unsafe { libc::memfd_create(c"process-runtime-beacon".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(not(target_os = "linux"))]
fn shared_file() -> io::Result<OwnedFd> {
    // Elsewhere: a temporary file created exclusively and unlinked at once, so only
    // the descriptor remains.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_sections() {
        for s in [
            Section::Preloop,
            Section::MainLoop,
            Section::Postloop,
            Section::OnFinish,
            Section::Result,
            Section::Error,
        ] {
            assert_eq!(section_of(encode(41, s)), Some(s));
            assert_ne!(encode(41, s), encode(42, s));
        }
        assert_eq!(section_of(NOT_STARTED), None);
    }

    #[test]
    fn two_mappings_of_one_descriptor_share_the_word() {
        let (parent, fd) = Beacon::create().unwrap();
        let child = Beacon::open(&fd).unwrap();
        assert_eq!(child.word().load(Ordering::Relaxed), NOT_STARTED);
        child
            .word()
            .store(encode(3, Section::Postloop), Ordering::Relaxed);
        assert_eq!(
            section_of(parent.word().load(Ordering::Relaxed)),
            Some(Section::Postloop)
        );
    }
}
