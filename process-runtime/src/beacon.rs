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
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::sys::SharedMapping;
use crate::Section;

/// Bytes of the shared mapping.
const MAP_LEN: usize = 4096;
/// Where the stop flag sits in the mapping, after the beacon word.
const STOP_OFFSET: usize = 8;

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

/// The shared mapping that holds the beacon word.
#[derive(Debug)]
pub(crate) struct Beacon {
    mapping: SharedMapping,
}

impl Beacon {
    /// Creates a fresh mapping and returns it with the descriptor to hand to the child.
    pub(crate) fn create() -> io::Result<(Self, OwnedFd)> {
        let (mapping, fd) = SharedMapping::create(MAP_LEN)?;
        let beacon = Self { mapping };
        beacon.word().store(NOT_STARTED, Ordering::Relaxed);
        Ok((beacon, fd))
    }

    /// Maps the page behind an inherited descriptor (the child's side).
    pub(crate) fn open(fd: &OwnedFd) -> io::Result<Self> {
        Ok(Self {
            mapping: SharedMapping::open(fd, MAP_LEN)?,
        })
    }

    /// The shared word.
    pub(crate) fn word(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned, longer than 8 bytes and valid while
        // `self` lives; AtomicU64 has no invalid bit patterns.
        unsafe { self.mapping.as_ptr().cast::<AtomicU64>().as_ref() }
    }

    /// The stop flag: set by the parent's `Handle::stop`, read by the engine between
    /// sections and by `Context::is_stopping`, with no frame and no thread between them.
    pub(crate) fn stop_flag(&self) -> &AtomicBool {
        // SAFETY: byte STOP_OFFSET of a mapping longer than that, valid while `self`
        // lives; AtomicBool is one byte, and the parent only ever stores 0 or 1 there.
        // A child that scribbles another value only confuses itself.
        unsafe {
            self.mapping
                .as_ptr()
                .add(STOP_OFFSET)
                .cast::<AtomicBool>()
                .as_ref()
        }
    }

    /// Keeps the mapping for the rest of the process's life (the child's side: the
    /// engine and the context hold `'static` references into it).
    pub(crate) fn leak(self) -> (&'static AtomicU64, &'static AtomicBool) {
        let ptr = self.mapping.leak();
        // SAFETY: the mapping is never unmapped now; see `word` and `stop_flag`.
        unsafe {
            (
                ptr.cast::<AtomicU64>().as_ref(),
                ptr.add(STOP_OFFSET).cast::<AtomicBool>().as_ref(),
            )
        }
    }
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
