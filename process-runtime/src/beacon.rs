//! The beacon: one shared-memory word where the child says which section it is in.
//!
//! Section timeouts are on by default, so telling the parent where the child is must
//! cost nanoseconds, not a syscall per section. The parent creates a small shared
//! mapping (a `memfd` on Linux, an unlinked temporary file on other Unix systems),
//! hands its descriptor to the child like the socket, and both map it. At each section
//! start the engine stores `(entries << 3) | section` with a relaxed store; the
//! parent's supervisor samples the word on each tick and times how long it has stayed
//! the same. A changed word means a new section started, even if it is the same section
//! of the next lap, because the entry count moved. When the child dies, the last word
//! names the section it died in.
//!
//! The same mapping holds the child's `ProcessTimers`, from `TIMERS_OFFSET` on (64 KiB,
//! zero-filled, which is empty timers): the engine records each section's duration
//! there as the section ends, at no cost beyond timing into a private timer (and one
//! byte, stored whenever the timers are lent out mutably, that says they were
//! written), so when the child dies without a report (a timeout, a crash, a kill) the
//! parent still has its section timers up to the last section it completed. The parent
//! reads only the five section timers, which are plain data (any bytes are a valid
//! `Timer`), only once the child is gone, and only when a handle first asks for them;
//! the named timers hold pointers into the child's heap and travel in its report.
//!
//! Between the two sit the mailbox counters ([`MailCounters`]), and after the timers,
//! from `TAKEN_OFFSET` on, the taken bitmap ([`Taken`]): one bit for each slot of the
//! child's mailbox, which the child sets when it takes the message in that slot (see
//! `parent/mailbox.rs`). The bitmap is as long as the mailbox is large, so the
//! mapping's length depends on it: the parent sizes the file so, and the child maps
//! what the file holds (`sys::shared_len`), so that the two cannot disagree. One page
//! for the default mailbox of 100, 124 KiB for the largest, of a million; the pages of
//! slots never used are never backed by memory.
//!
//! Before the results area sits an area as large, the tells area, where a child
//! leaves the messages it tells its parent (the same ring, see `pool/ring.rs` and
//! `child/port.rs`): a stream of messages costs a copy each, not a system call, and
//! what was told is there for the parent even if the child dies at once after.
//!
//! The last [`RESULTS_LEN`] bytes of every mapping are the results area ([`Area`]),
//! where a pool worker leaves its items' results (see `pool/ring.rs`): results written
//! there survive the worker's death, however sudden. Every child has one, so that a
//! warm child can become a pool worker; only pool workers touch it, and pages never
//! touched are never backed by memory.

use std::io;
use std::mem::{align_of, size_of};
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::sys::{self, SharedMapping};
use crate::wire::protocol::ReportTimers;
use crate::{ProcessTimers, Section};

/// Where the stop flag sits in the mapping, after the beacon word.
const STOP_OFFSET: usize = 8;
/// Where the parent says that the stop came from it (`Handle::stop`, a dropped handle,
/// a shutdown), not from the process's own `cx.stop()`: a process stopped from above
/// stops its own children before its `on_finish` (see `shutdown.rs`).
const PARENT_STOP_OFFSET: usize = 9;
/// A 32-bit word the parent bumps, and wakes waiters on (`sys::wake_word`), after each
/// stop it requests: a child with children of its own waits on it to pass the stop on
/// at once, instead of looking at the flags now and then (see `shutdown.rs`).
const STOP_WAKE_OFFSET: usize = 12;
const _: () = assert!(STOP_WAKE_OFFSET % align_of::<AtomicU32>() == 0);
const _: () = assert!(STOP_WAKE_OFFSET + size_of::<AtomicU32>() <= WRITTEN_OFFSET);
/// Where the child says it wrote its timers (a byte, 0 or 1), so that the parent reads
/// them only then: reading untouched pages of the mapping would fault them in.
const WRITTEN_OFFSET: usize = 16;
/// Where the mailbox counters sit (see [`MailCounters`]), up to `TIMERS_OFFSET`.
const MAIL_OFFSET: usize = 24;
const _: () = assert!(MAIL_OFFSET % align_of::<MailCounters>() == 0);
const _: () = assert!(MAIL_OFFSET + size_of::<MailCounters>() <= TIMERS_OFFSET);
/// Where the child's timers start in the mapping: after the beacon word and its
/// neighbours, on a cache line of their own.
const TIMERS_OFFSET: usize = 64;
const _: () = assert!(TIMERS_OFFSET % align_of::<ProcessTimers>() == 0);

/// Where the taken bitmap starts: on the first page after the timers, so that it never
/// shares a page (or a cache line) with what the child writes as sections end.
const TAKEN_OFFSET: usize = (TIMERS_OFFSET + size_of::<ProcessTimers>()).next_multiple_of(PAGE);
const _: () = assert!(TAKEN_OFFSET % align_of::<AtomicU64>() == 0);

const PAGE: usize = 4096;

/// Bytes of the results area at the end of every mapping (see [`Area`]).
pub(crate) const RESULTS_LEN: usize = 128 * 1024;
const _: () = assert!(RESULTS_LEN % PAGE == 0);

/// Bytes of the shared mapping for a mailbox of `capacity`: the beacon's page, the
/// timers, the taken bitmap, the tells area and the results area, each in whole pages.
/// Pages the child never writes are never backed by memory.
fn map_len(capacity: u32) -> usize {
    let words = (capacity as usize).div_ceil(64);
    TAKEN_OFFSET + (words * size_of::<AtomicU64>()).next_multiple_of(PAGE) + 2 * RESULTS_LEN
}

/// The results area or the tells area of a mapping: [`RESULTS_LEN`] page-aligned bytes,
/// zero-filled at first, that a child writes and its parent reads (see `pool/ring.rs`, which
/// owns what is stored there and how it is accessed). It is valid while its mapping
/// is: for ever in the child, as long as the [`Beacon`] it came from in the parent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Area {
    ptr: NonNull<u8>,
}

// SAFETY: a plain address of shared memory; what is accessed there, and how (atomics,
// and copies of bytes whose every value is valid), is the business of `pool/ring.rs`.
unsafe impl Send for Area {}
// SAFETY: as above.
unsafe impl Sync for Area {}

impl Area {
    /// The first byte, page-aligned; [`RESULTS_LEN`] bytes follow.
    pub(crate) fn as_ptr(self) -> NonNull<u8> {
        self.ptr
    }

    /// An area of plain memory that lives for ever, for tests of what is built on it.
    #[cfg(test)]
    pub(crate) fn leaked_for_test() -> Self {
        let words = vec![0u64; RESULTS_LEN / size_of::<u64>()].leak();
        Self {
            ptr: NonNull::from(&mut words[0]).cast(),
        }
    }
}

/// The start of the results area in a mapping of `len` bytes at `ptr`.
fn results_at(ptr: NonNull<u8>, len: usize) -> Area {
    // SAFETY: `len` is at least `map_len(1)` (checked when the mapping was made or
    // opened), so the last RESULTS_LEN bytes are inside it, and page-aligned since
    // `len` is a multiple of the page.
    Area {
        ptr: unsafe { ptr.add(len - RESULTS_LEN) },
    }
}

/// The start of the tells area, just before the results area, in a mapping of `len`
/// bytes at `ptr`.
fn tells_at(ptr: NonNull<u8>, len: usize) -> Area {
    // SAFETY: as for `results_at`: `len` is at least `map_len(1)`, which holds both
    // areas after the bitmap, and a multiple of the page.
    Area {
        ptr: unsafe { ptr.add(len - 2 * RESULTS_LEN) },
    }
}

/// The child's tells area, once its page is mapped (see [`Beacon::leak`]).
static CHILD_TELLS: OnceLock<Area> = OnceLock::new();

/// This child's tells area; `None` in a process that is not a child.
pub(crate) fn child_tells() -> Option<Area> {
    CHILD_TELLS.get().copied()
}

/// The child's results area, once its page is mapped (see [`Beacon::leak`]).
static CHILD_RESULTS: OnceLock<Area> = OnceLock::new();

/// This child's results area; `None` in a process that is not a child.
pub(crate) fn child_results() -> Option<Area> {
    CHILD_RESULTS.get().copied()
}

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

/// The counters that bound both mailboxes of a parent-child pair, shared so that
/// taking a message costs no frame and no syscall (see `parent/mailbox.rs`). Each side
/// writes its own counters and only reads the other's; the parent keeps its own copy of
/// what it granted, so a child that scribbles here only starves itself.
#[repr(C)]
pub(crate) struct MailCounters {
    /// Messages from the parent that the child has taken (written by the child, after
    /// it marked each in the taken bitmap). Which ones, the bitmap says; this count only
    /// tells the parent cheaply that the bitmap changed, and how many marks to look for.
    pub(crate) child_took: AtomicU64,
    /// Messages the child may have sent in all (written by the parent: the room its
    /// mailbox had when the child started, plus one for each message it took since).
    pub(crate) parent_grants: AtomicU64,
    /// Set while the parent waits for room in the child's mailbox: the child sends a
    /// room notice when it takes a message and finds it set.
    pub(crate) parent_waits: AtomicU64,
    /// Set while the child waits for room in the parent's mailbox.
    pub(crate) child_waits: AtomicU64,
    /// Frames with content (messages of the pair and of the node, the node's control)
    /// that the parent read off the socket (written by the parent, once it has drained
    /// the tells ring before each and handled it). The child commits to the ring only
    /// while this equals what it sent on the socket, which keeps the two ways in one
    /// order (see `child/port.rs`).
    pub(crate) socket_frames_read: AtomicU64,
}

/// The taken bitmap: bit `s` (of word `s / 64`, from its least significant bit) stands
/// for slot `s` of the child's mailbox. The child sets it when it takes the message in
/// that slot; the parent clears it when it frees the slot, before it puts another
/// message there. Either side changes only the bit in hand, with atomic operations, so
/// that the other side's changes to the same word are kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Taken<'a> {
    words: &'a [AtomicU64],
}

impl Taken<'_> {
    /// How many slots the bitmap has bits for: the mailbox's size, rounded up.
    pub(crate) fn slots(self) -> u64 {
        self.words.len() as u64 * 64
    }

    /// The child took the message in `slot`. `false` when the bitmap has no such slot.
    pub(crate) fn mark(self, slot: u32) -> bool {
        let Some(word) = self.words.get(slot as usize / 64) else {
            return false;
        };
        word.fetch_or(1 << (slot % 64), SeqCst);
        true
    }

    /// Whether the child took the message in `slot`; if so, the bit is cleared, so that
    /// the slot may be used again.
    pub(crate) fn clear_if_marked(self, slot: u32) -> bool {
        let Some(word) = self.words.get(slot as usize / 64) else {
            return false;
        };
        let bit = 1 << (slot % 64);
        if word.load(SeqCst) & bit == 0 {
            return false;
        }
        word.fetch_and(!bit, SeqCst);
        true
    }
}

/// The child's view of the mapping, kept for the rest of its life.
pub(crate) struct ChildPage {
    /// The beacon word the engine stores each section in.
    pub(crate) word: &'static AtomicU64,
    /// The stop flag the parent sets.
    pub(crate) stop: &'static AtomicBool,
    /// Set with `stop` when the stop came from the parent.
    pub(crate) parent_stop: &'static AtomicBool,
    /// Bumped, and woken, by the parent after each stop it requests.
    pub(crate) stop_wake: &'static AtomicU32,
    /// The timers the engine records into.
    pub(crate) timers: ChildTimers,
    /// The mailbox counters.
    pub(crate) mail: &'static MailCounters,
    /// The taken bitmap.
    pub(crate) taken: Taken<'static>,
}

/// The child's timers, in the mapping, and the flag that says they were written to.
pub(crate) struct ChildTimers {
    pub(crate) timers: &'static mut ProcessTimers,
    pub(crate) written: &'static AtomicBool,
}

/// The shared mapping that holds the beacon word.
#[derive(Debug)]
pub(crate) struct Beacon {
    mapping: SharedMapping,
}

impl Beacon {
    /// Creates a fresh mapping for a mailbox of `capacity` messages and returns it with
    /// the descriptor to hand to the child.
    pub(crate) fn create(capacity: u32) -> io::Result<(Self, OwnedFd)> {
        let (mapping, fd) = SharedMapping::create(map_len(capacity))?;
        let beacon = Self { mapping };
        beacon.word().store(NOT_STARTED, Ordering::Relaxed);
        Ok((beacon, fd))
    }

    /// Maps the page behind an inherited descriptor (the child's side), as long as the
    /// parent made it: the child learns the mailbox's size only later, from its start
    /// frame, and a mapping longer than its file would fault where it goes past it.
    pub(crate) fn open(fd: &OwnedFd) -> io::Result<Self> {
        use std::os::fd::AsFd;
        let len = sys::shared_len(fd.as_fd())?;
        if len < map_len(1) || len % PAGE != 0 {
            return Err(io::Error::other(format!(
                "the shared page has {len} bytes, not whole pages at least as many as the {} \
                 of the smallest mailbox",
                map_len(1)
            )));
        }
        Ok(Self {
            mapping: SharedMapping::open(fd, len)?,
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

    /// Asks the child to stop, saying that the parent asked: the parent-stop flag is
    /// stored before the stop flag, with release ordering, so that a child that sees
    /// the stop with acquire ordering sees where it came from.
    pub(crate) fn request_stop(&self) {
        // SAFETY: byte PARENT_STOP_OFFSET of a mapping longer than that, valid while
        // `self` lives; as for `stop_flag`.
        let parent_stop = unsafe {
            self.mapping
                .as_ptr()
                .add(PARENT_STOP_OFFSET)
                .cast::<AtomicBool>()
                .as_ref()
        };
        parent_stop.store(true, Ordering::Relaxed);
        self.stop_flag().store(true, Ordering::Release);
        // SAFETY: the aligned 32-bit word at STOP_WAKE_OFFSET of a mapping longer than
        // that, valid while `self` lives; every bit pattern is a valid u32.
        let wake = unsafe {
            self.mapping
                .as_ptr()
                .add(STOP_WAKE_OFFSET)
                .cast::<AtomicU32>()
                .as_ref()
        };
        // After the flags: a child that reads the word, then finds no stop, then waits
        // while the word is unchanged, cannot miss this one.
        wake.fetch_add(1, SeqCst);
        sys::wake_word(wake);
    }

    /// The mailbox counters.
    pub(crate) fn mail(&self) -> &MailCounters {
        // SAFETY: an aligned range of the mapping (checked above), valid while `self`
        // lives; atomics have no invalid bit patterns.
        unsafe {
            self.mapping
                .as_ptr()
                .add(MAIL_OFFSET)
                .cast::<MailCounters>()
                .as_ref()
        }
    }

    /// The taken bitmap.
    pub(crate) fn taken(&self) -> Taken<'_> {
        // SAFETY: see `taken_at`; the words borrow `self`, which keeps the mapping.
        unsafe { taken_at(self.mapping.as_ptr(), self.mapping.len()) }
    }

    /// The results area: valid while `self` is (hold the `Arc` as long as it is used).
    pub(crate) fn results(&self) -> Area {
        results_at(self.mapping.as_ptr(), self.mapping.len())
    }

    /// The tells area: valid while `self` is (hold the `Arc` as long as it is used).
    pub(crate) fn tells(&self) -> Area {
        tells_at(self.mapping.as_ptr(), self.mapping.len())
    }

    /// Keeps the mapping for the rest of the process's life (the child's side: the
    /// engine holds `'static` references to the word and the stop flag, and the context
    /// one to the timers).
    pub(crate) fn leak(self) -> ChildPage {
        let len = self.mapping.len();
        let ptr = self.mapping.leak();
        // SAFETY: the mapping is never unmapped now; see `word`.
        let word = unsafe { ptr.cast::<AtomicU64>().as_ref() };
        // SAFETY: see `stop_flag`; the mapping is never unmapped now.
        let stop = unsafe { ptr.add(STOP_OFFSET).cast::<AtomicBool>().as_ref() };
        // SAFETY: as for `stop`, at PARENT_STOP_OFFSET.
        let parent_stop = unsafe { ptr.add(PARENT_STOP_OFFSET).cast::<AtomicBool>().as_ref() };
        // SAFETY: the aligned word at STOP_WAKE_OFFSET (checked above), never unmapped
        // now; every bit pattern is a valid u32.
        let stop_wake = unsafe { ptr.add(STOP_WAKE_OFFSET).cast::<AtomicU32>().as_ref() };
        // SAFETY: byte WRITTEN_OFFSET of the mapping, never unmapped now; AtomicBool is
        // one byte, and the mapping starts zeroed (false). The parent only reads it.
        let written = unsafe { ptr.add(WRITTEN_OFFSET).cast::<AtomicBool>().as_ref() };
        // SAFETY: TIMERS_OFFSET + size_of::<ProcessTimers>() <= TAKEN_OFFSET, and the
        // offset is aligned for ProcessTimers in a page-aligned mapping. The parent
        // made the mapping zero-filled and never writes that range, and this is the
        // only reference to it in this process (`leak` consumed the mapping). The
        // parent reads the section timers, plain data, only after this process is gone.
        let timers =
            unsafe { ProcessTimers::__from_zeroed(ptr.add(TIMERS_OFFSET).cast::<ProcessTimers>()) };
        // SAFETY: see `mail`; the mapping is never unmapped now.
        let mail = unsafe { ptr.add(MAIL_OFFSET).cast::<MailCounters>().as_ref() };
        // SAFETY: see `taken_at`; the mapping is never unmapped now.
        let taken = unsafe { taken_at(ptr, len) };
        // A process maps one page as a child, once; a second (only in tests) keeps the first.
        let _ = CHILD_RESULTS.set(results_at(ptr, len));
        let _ = CHILD_TELLS.set(tells_at(ptr, len));
        ChildPage {
            word,
            stop,
            parent_stop,
            stop_wake,
            timers: ChildTimers { timers, written },
            mail,
            taken,
        }
    }
}

/// The taken bitmap of a mapping at `ptr`, `len` bytes long: its whole words from
/// `TAKEN_OFFSET` to the tells area.
///
/// # Safety
/// `ptr` is the start of a page-aligned mapping of `len` bytes, `len` at least
/// `TAKEN_OFFSET + 2 * RESULTS_LEN`, and it stays mapped for `'a`.
unsafe fn taken_at<'a>(ptr: NonNull<u8>, len: usize) -> Taken<'a> {
    let words = (len - 2 * RESULTS_LEN - TAKEN_OFFSET) / size_of::<AtomicU64>();
    // SAFETY: the range is inside the mapping, aligned (TAKEN_OFFSET is a multiple of
    // 8 in a page-aligned mapping) and valid for 'a, as the caller promises; atomics
    // have no invalid bit patterns, and are all either side accesses them as.
    let words = unsafe {
        std::slice::from_raw_parts(ptr.as_ptr().add(TAKEN_OFFSET).cast::<AtomicU64>(), words)
    };
    Taken { words }
}

/// The timers an attempt left, read from its mapping only when first asked for, so
/// that nothing is read on the way to publishing the outcome, and never before the
/// child is gone (a handle asks only once the process has ended).
#[derive(Debug)]
pub(crate) struct AttemptTimers {
    beacon: Arc<Beacon>,
    reported: Option<ReportTimers>,
    attempt: u32,
    read: OnceLock<Box<ProcessTimers>>,
}

impl AttemptTimers {
    /// The timers of attempt number `attempt`, whose mapping is `beacon`, with the
    /// timers its report carried if it sent one.
    pub(crate) fn new(beacon: &Arc<Beacon>, reported: Option<ReportTimers>, attempt: u32) -> Self {
        Self {
            beacon: Arc::clone(beacon),
            reported,
            attempt,
            read: OnceLock::new(),
        }
    }

    /// The five section timers from the mapping, whatever the end, and with a report
    /// its named timers; without one (a timeout, a crash, a kill), the attempt counts
    /// as failed.
    pub(crate) fn get(&self) -> &ProcessTimers {
        self.read.get_or_init(|| {
            let mut timers = ProcessTimers::__new_boxed();
            let base = self.beacon.mapping.as_ptr().as_ptr();
            // SAFETY: a byte of the mapping, valid while `self.beacon` lives; read as a
            // u8, so that any value the child left there is valid.
            let written = unsafe { base.add(WRITTEN_OFFSET).read_volatile() } != 0;
            if written {
                let src = base.wrapping_add(TIMERS_OFFSET).cast::<ProcessTimers>();
                // SAFETY: an aligned range of the mapping (see `leak`), valid while
                // `self.beacon` lives, all of it initialized (zero-filled, then written
                // by the child).
                unsafe { timers.__read_sections(src) };
            }
            match &self.reported {
                Some(report) => {
                    timers.__set_origin(self.attempt, report.failed);
                    timers.__set_named(report.named.clone());
                }
                None => timers.__set_origin(self.attempt, true),
            }
            timers
        })
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
    fn the_parent_reads_the_section_timers_the_child_keeps() {
        use std::time::Duration;
        let (parent, fd) = Beacon::create(100).unwrap();
        let parent = Arc::new(parent);
        let child = Beacon::open(&fd).unwrap().leak().timers;
        let (kept, written) = (child.timers, child.written);
        assert_eq!(
            *kept,
            ProcessTimers::default(),
            "zeroed memory is empty timers"
        );
        kept.main_loop.add_time(Duration::from_millis(9));
        let unflagged = AttemptTimers::new(&parent, None, 1);
        assert_eq!(
            unflagged.get().main_loop.num_times(),
            0,
            "not read before the child says it wrote"
        );
        kept.main_loop.reset();
        written.store(true, Ordering::Relaxed);
        for ms in [1, 2, 3] {
            kept.main_loop.add_time(Duration::from_millis(ms));
        }
        kept.on_finish.add_time(Duration::from_millis(4));
        kept.named_mut("fetch").add_time(Duration::from_millis(5));

        // No report: the sections, from a failed attempt.
        let crashed = AttemptTimers::new(&parent, None, 2);
        let read = crashed.get();
        assert_eq!(read.main_loop, kept.main_loop);
        assert_eq!(read.on_finish, kept.on_finish);
        assert_eq!(read.preloop.num_times(), 0);
        assert!(read.named("fetch").is_none());
        assert_eq!((read.attempt(), read.from_failed_attempt()), (2, true));

        // A report: its named timers and its word on the outcome.
        let report = ReportTimers::new(kept.__take_named(), 2, false);
        let reported = AttemptTimers::new(&parent, Some(report), 2);
        let read = reported.get();
        assert_eq!(read.main_loop.num_times(), 3);
        assert_eq!(read.named("fetch").unwrap().num_times(), 1);
        assert_eq!((read.attempt(), read.from_failed_attempt()), (2, false));
        // Read once: later changes in the mapping are not seen.
        kept.main_loop.add_time(Duration::from_millis(1));
        assert_eq!(reported.get().main_loop.num_times(), 3);
    }

    #[test]
    fn the_taken_bitmap_is_as_large_as_the_mailbox_and_shared() {
        for capacity in [1, 64, 100, 4096 * 8, 4096 * 8 + 1, 1_000_000] {
            let (parent, fd) = Beacon::create(capacity).unwrap();
            let child = Beacon::open(&fd).unwrap();
            let slots = parent.taken().slots();
            assert_eq!(child.taken().slots(), slots, "the child maps all of it");
            assert!(slots >= u64::from(capacity), "{capacity}: {slots} slots");
            assert!(
                slots < u64::from(capacity) + 4096 * 8,
                "whole pages, no more"
            );
            let last = capacity - 1;
            for slot in [0, last / 2, last] {
                assert!(!parent.taken().clear_if_marked(slot));
                assert!(child.taken().mark(slot));
                assert!(parent.taken().clear_if_marked(slot), "{capacity}: {slot}");
                assert!(!parent.taken().clear_if_marked(slot), "cleared");
            }
            // Bits of one word are kept apart.
            assert!(child.taken().mark(0));
            assert!(child.taken().mark(last.min(63)));
            assert!(parent.taken().clear_if_marked(last.min(63)));
            assert_eq!(parent.taken().clear_if_marked(0), last.min(63) != 0);
            // Out of range: refused, and nothing is written.
            let beyond = u32::try_from(slots).unwrap();
            assert!(!child.taken().mark(beyond));
            assert!(!parent.taken().clear_if_marked(u32::MAX));
        }
        // A mapping whose bitmap is too short for the smallest mailbox is refused.
        let (_, fd) = SharedMapping::create(TAKEN_OFFSET).unwrap();
        assert!(Beacon::open(&fd).is_err());
    }

    #[test]
    fn two_mappings_of_one_descriptor_share_the_word() {
        let (parent, fd) = Beacon::create(100).unwrap();
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
