//! Direct links between siblings: a socket pair of their own, so that the messages of
//! two children of one parent that talk a lot skip the parent.
//!
//! **Making one.** A child relays its first [`RELAYED_FIRST`] messages to a sibling
//! through their parent, as any message of the node. Then it makes a socket pair,
//! keeps one end, and sends the other to the sibling as a hello message, relayed like
//! the rest (its descriptor travels with it, `SCM_RIGHTS`, hop by hop). The parent
//! hands the hello on only between two children of its own that have a single life
//! (a link belongs to one attempt of each side; messages written to an attempt that
//! fails would not reach the next one, as relayed messages do): otherwise it drops it,
//! the sender reads the end of its socket, and keeps relaying for good.
//!
//! **Order.** The receiver files the hello in its mailbox's order, after everything
//! the sender relayed before it, installs its end, and answers on it with its
//! mailbox's size. Until that answer is read, the sender still relays, and counts what
//! it relays; then it writes that count on the link, and from then on writes its
//! messages there. The receiver reads the link only once it has filed as many relayed
//! messages from that sender since the hello: nothing written on the link overtakes
//! what was relayed before it.
//!
//! **The bound.** The sender may have as many messages on the link that the receiver
//! has not taken as the receiver's mailbox holds (at most [`MAX_WINDOW`], and
//! [`MAX_BYTES`] of them unless it is a single one): the receiver counts each one it
//! takes (or drops) on a page the two share (see `link_page`), with no system call;
//! `try_send` finds the rest `Full`, and `send` waits for one, woken by a frame on the
//! link that the receiver writes only when the page says the sender waits. A single
//! message larger than the socket's buffer may wait for the receiver to read it, even
//! from `try_send`. A link carries one way; two siblings that both talk have two.
//!
//! **Reading.** A child without children of its own reads the links in the thread
//! that receives, which waits on its parent's socket and its links at once (no thread
//! hop: the point of the link). Once the event loop watches the parent's socket
//! (children of its own, or `receive_async`), each link gets a thread that reads it
//! and files what comes.
//!
//! **Ends.** When either side's process ends, its end closes. The reader sees the end
//! of the link when it next reads it (at once where threads read the links, at the
//! next receive otherwise), after what the sender wrote before its end, and forgets
//! the link; its descriptor closes once the messages it brought are taken. A sender
//! that writes to, or waits on, a link whose reader has gone gets `SendError::NoProc`
//! (the receiver had a single life); one that hears from the root that the receiver
//! ended closes its end at once.
//!
//! The frames on a link: from the sender, the count of relayed messages (once), then
//! the node's message frames as a child writes them to its parent; from the receiver,
//! its mailbox's size (once), then a wake-up each time it takes a message while the
//! sender waits for room. The hello carries two descriptors: the receiver's end of the
//! socket pair, and the page.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use interprocess::local_socket::Stream;

use super::link_page::LinkPage;
use super::mailbox::{self, Entry};
use super::{local, Credit};
use crate::parent::shared::Shared;
use crate::wire::channel::{write_frame, Conn, Frame, FrameReader, ParentRead, ReadError};
use crate::wire::protocol::{self, Kind, Route, MAX_FRAME, TO_PARENT};
use crate::{spin, sys, Pid, SendError};

/// The most messages a link holds not taken, whatever the receiver's mailbox, and the
/// most bytes of them (but one message of any size): what the sender's socket buffer
/// surely takes without waiting, so that `try_send` never waits for a receiver that does
/// not read.
const MAX_WINDOW: u64 = 128;
const MAX_BYTES: usize = 64 * 1024;

/// Messages relayed to a sibling before a link to it is made.
pub(crate) const RELAYED_FIRST: u64 = 8;

/// The first byte of the sender's count of relayed messages.
const SWITCH: u8 = 0xD0;
/// The first byte of the receiver's answer: its mailbox's size.
const ACCEPT: u8 = 0xD1;
/// The first byte of a wake-up: a message was taken while the sender waited for room
/// (the page has how many).
const GIVEN_BACK: u8 = 0xD2;

/// The hello that carries the receiver's end of a link.
#[derive(serde::Serialize, serde::Deserialize)]
struct LinkHello;

/// The tag of the hello.
pub(crate) fn hello_tag() -> u64 {
    process_core::__tag_of::<LinkHello>()
}

/// A small frame of a link: a kind and a number.
fn small_frame(kind: u8, n: u64) -> [u8; 13] {
    let mut frame = [0u8; 13];
    frame[..4].copy_from_slice(&9u32.to_le_bytes());
    frame[4] = kind;
    frame[5..].copy_from_slice(&n.to_le_bytes());
    frame
}

/// A small frame's kind and number.
fn small_of(payload: &[u8]) -> Option<(u8, u64)> {
    let (&kind, n) = payload.split_first()?;
    Some((kind, u64::from_le_bytes(n.try_into().ok()?)))
}

// ---------------------------------------------------------------------------------
// The sending side.

/// What this process knows of its way to one sibling.
enum Out {
    /// Relayed so far.
    Relaying { relayed: u64 },
    /// The hello is on its way; `relayed` counts what was relayed since.
    Offered {
        conn: Conn,
        reader: FrameReader<Conn>,
        page: LinkPage,
        relayed: u64,
    },
    /// Written on the link, within `window`.
    Linked {
        conn: Conn,
        reader: FrameReader<Conn>,
        window: Window,
    },
    /// Relayed for good (the parent refused the link, or it could not be made).
    Refused,
}

/// What a sender has on a link that the receiver has not taken.
struct Window {
    /// The most messages not taken.
    size: u64,
    /// Where the receiver counts what it takes.
    page: LinkPage,
    /// The page's count when last read.
    taken: u64,
    /// The size of each message not taken (as of `taken`), oldest first, and their sum.
    unreturned: VecDeque<usize>,
    bytes: usize,
}

impl Window {
    fn new(size: u64, page: LinkPage) -> Self {
        Self {
            size,
            page,
            taken: 0,
            unreturned: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Whether a message of `len` bytes fits, as of the last reading of the page.
    fn fits(&self, len: usize) -> bool {
        (self.unreturned.len() as u64) < self.size
            && (self.bytes + len <= MAX_BYTES || self.unreturned.is_empty())
    }

    /// A message of `len` bytes was written.
    fn wrote(&mut self, len: usize) {
        self.unreturned.push_back(len);
        self.bytes += len;
    }

    /// Reads the page: what the receiver took since is no longer in the window.
    fn catch_up(&mut self) {
        let taken = self.page.taken();
        let n = usize::try_from(taken.saturating_sub(self.taken)).unwrap_or(usize::MAX);
        for len in self.unreturned.drain(..n.min(self.unreturned.len())) {
            self.bytes -= len;
        }
        self.taken = taken;
    }
}

type Outs = HashMap<Pid, Arc<Mutex<Out>>>;

static OUTS: Mutex<Option<Outs>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Relays a sealed frame to the parent: `port.send_frame` for `node::send`.
pub(crate) type Relay<'a> = dyn Fn(Vec<u8>, &[OwnedFd], bool) -> Result<(), SendError> + 'a;

/// Sends a sealed message frame (laid out for the parent) with its descriptors to
/// `to`: on the link to it when there is one, else through `relay`, which also makes
/// the link once enough went that way.
pub(crate) fn send(
    to: Pid,
    frame: Vec<u8>,
    fds: Vec<OwnedFd>,
    wait: bool,
    relay: &Relay<'_>,
) -> Result<(), SendError> {
    let me = local::self_pid();
    if me.is_root() || to == me || to.parent() != me.parent() {
        return relay(frame, &fds, wait);
    }
    let out = Arc::clone(
        lock(&OUTS)
            .get_or_insert_with(HashMap::new)
            .entry(to)
            .or_insert_with(|| Arc::new(Mutex::new(Out::Relaying { relayed: 0 }))),
    );
    // Held across the write: messages to one sibling go out one at a time, in order,
    // and the switch to the link happens between two of them.
    let mut out = lock(&out);
    if let Out::Offered { .. } = &*out {
        accept_if_answered(&mut out);
    }
    match &mut *out {
        Out::Relaying { relayed } => {
            relay(frame, &fds, wait)?;
            *relayed += 1;
            if *relayed >= RELAYED_FIRST {
                *out = offer(me, to, relay);
            }
            Ok(())
        }
        Out::Offered { relayed, .. } => {
            relay(frame, &fds, wait)?;
            *relayed += 1;
            Ok(())
        }
        Out::Refused => relay(frame, &fds, wait),
        Out::Linked { .. } => {
            let sent = write_linked(&mut out, &frame, &fds, wait);
            if sent == Err(SendError::NoProc) {
                // The receiver has gone: so has the link.
                *out = Out::Refused;
                forget(to);
            }
            sent
        }
    }
}

/// Forgets the way to `to`, and with it the link's end (closed once a send under way
/// is done with it): `to` has ended, or a send found the link's reader gone.
pub(crate) fn forget(to: Pid) {
    if let Some(outs) = lock(&OUTS).as_mut() {
        outs.remove(&to);
    }
}

/// Makes a link to `to` and sends the hello with the receiver's end; `Refused` when
/// either fails.
fn offer(me: Pid, to: Pid, relay: &Relay<'_>) -> Out {
    let made = sys::socket_pair().and_then(|pair| Ok((pair, LinkPage::create()?)));
    let ((mine, theirs), (page, page_fd)) = match made {
        Ok(made) => made,
        Err(e) => {
            tracing::warn!("cannot make a direct link to {to}: {e}");
            return Out::Refused;
        }
    };
    let mut frame = protocol::routed_prefix(&TO_PARENT, hello_tag(), Route { from: me, to });
    frame.extend_from_slice(&postcard::to_allocvec(&LinkHello).unwrap_or_default());
    let Ok(frame) = protocol::seal(frame, "a direct link's hello") else {
        return Out::Refused;
    };
    // Not waiting: a full mailbox on the way only leaves this message relayed, and the
    // next one tries again.
    match relay(frame, &[theirs, page_fd], false) {
        Ok(()) => {
            let conn = Conn::from_fd(mine);
            Out::Offered {
                reader: FrameReader::new(conn.clone()),
                conn,
                page,
                relayed: 0,
            }
        }
        Err(SendError::Full) => Out::Relaying {
            relayed: RELAYED_FIRST - 1,
        },
        Err(_) => Out::Refused,
    }
}

/// An offered link whose receiver answered becomes the way: the count of what was
/// relayed since the hello goes first. One whose receiver closed it (refused by the
/// parent, or the receiver gone) is given up.
fn accept_if_answered(out: &mut Out) {
    let Out::Offered {
        conn,
        reader,
        relayed,
        ..
    } = out
    else {
        return;
    };
    let answer = match sys::poll_readable(conn.stream(), Duration::ZERO) {
        Ok(true) => reader.read_frame(64),
        Ok(false) => return,
        Err(_) => Err(ReadError::Closed { partial: false }),
    };
    let window = match answer {
        Ok(Some(frame)) => match small_of(frame.payload()) {
            Some((ACCEPT, window)) => window,
            _ => 0,
        },
        Ok(None) => return,
        Err(_) => 0,
    };
    if window == 0 || write_frame(&*conn, &small_frame(SWITCH, *relayed)).is_err() {
        *out = Out::Refused;
        return;
    }
    let Out::Offered {
        conn, reader, page, ..
    } = std::mem::replace(out, Out::Refused)
    else {
        unreachable!("matched above");
    };
    *out = Out::Linked {
        conn,
        reader,
        window: Window::new(window.min(MAX_WINDOW), page),
    };
}

/// Writes a message on the link, within its window; waits for room when `wait`.
fn write_linked(out: &mut Out, frame: &[u8], fds: &[OwnedFd], wait: bool) -> Result<(), SendError> {
    let Out::Linked {
        conn,
        reader,
        window,
    } = out
    else {
        unreachable!("called on a link");
    };
    if !window.fits(frame.len()) {
        window.catch_up();
    }
    let mut waited = false;
    let sent = loop {
        if window.fits(frame.len()) {
            let written = crate::wire::descriptors::write_frame_with(conn, frame, fds);
            if written.is_ok() {
                window.wrote(frame.len());
                window.page.sent_one();
            }
            break written.map_err(|_| SendError::NoProc);
        }
        // Full as far as the page says: wait for a wake-up, in slices, so that the
        // receiver's end is noticed however it ends (and a look, when not waiting, so
        // that a receiver gone is `NoProc` rather than `Full`). Saying that it waits
        // before looking at the page again: a message taken after that look wakes it.
        let limit = if wait {
            if !std::mem::replace(&mut waited, true) {
                // The wake-ups of earlier waits that were not needed (the room came
                // before the wait): read now, so that they never fill the socket.
                if let Err(e) = drop_wakeups(conn, reader) {
                    break Err(e);
                }
            }
            window.page.set_waiting(true);
            window.catch_up();
            if window.fits(frame.len()) {
                continue;
            }
            Duration::from_millis(100)
        } else {
            Duration::ZERO
        };
        let readable = match reader.has_buffered() {
            true => Ok(true),
            false => sys::poll_readable(conn.stream(), limit),
        };
        match readable {
            Ok(true) => match reader.read_frame(64) {
                Ok(Some(frame))
                    if small_of(frame.payload()).map(|(k, _)| k) == Some(GIVEN_BACK) => {}
                Ok(None) => {}
                _ => break Err(SendError::NoProc),
            },
            Ok(false) if !wait => break Err(SendError::Full),
            Ok(false) => {}
            Err(_) => break Err(SendError::NoProc),
        }
        window.catch_up();
    };
    if waited {
        window.page.set_waiting(false);
    }
    sent
}

/// Reads the wake-ups a link's receiver wrote that are there, without waiting;
/// `NoProc` when the receiver has gone.
fn drop_wakeups(conn: &Conn, reader: &mut FrameReader<Conn>) -> Result<(), SendError> {
    loop {
        let readable = reader.has_buffered()
            || sys::poll_readable(conn.stream(), Duration::ZERO).map_err(|_| SendError::NoProc)?;
        if !readable {
            return Ok(());
        }
        match reader.read_frame(64) {
            Ok(Some(frame)) if small_of(frame.payload()).map(|(k, _)| k) == Some(GIVEN_BACK) => {}
            Ok(None) => return Ok(()),
            _ => return Err(SendError::NoProc),
        }
    }
}

/// Whether the parent hands a hello from `sender` on: between two children of this
/// process with a single life each.
pub(crate) fn may_hand_on(sender: &Shared, route: Route) -> bool {
    let me = local::self_pid();
    route.from == sender.id
        && route.to.parent() == Some(me)
        && sender.config.lives <= 1
        && local::child(route.to.__number()).is_some_and(|target| target.config.lives <= 1)
}

// ---------------------------------------------------------------------------------
// The receiving side.

/// This process's end of a link from a sibling.
pub(crate) struct Inbound {
    from: Pid,
    conn: Conn,
    reader: Mutex<FrameReader<ParentRead>>,
    /// Messages relayed by the sender filed since the hello.
    relayed: AtomicU64,
    /// How many relayed messages come before the link's first (`u64::MAX` until the
    /// sender says).
    switch_at: AtomicU64,
    /// Where the messages taken are counted for the sender.
    page: LinkPage,
}

impl Inbound {
    /// Whether the link may be read now: its count, or messages once everything relayed
    /// before them is filed.
    fn readable(&self) -> bool {
        let at = self.switch_at.load(SeqCst);
        at == u64::MAX || self.relayed.load(SeqCst) >= at
    }

    /// A message from the link was taken or dropped: one more place for the sender,
    /// counted on the page; a sender that waits for it is woken, without waiting (a
    /// full socket is a sender woken already).
    pub(crate) fn give_back(&self) {
        if !self.page.took_one() {
            return;
        }
        let frame = small_frame(GIVEN_BACK, 1);
        match sys::send_dontwait(self.conn.stream(), &frame) {
            Ok(n) if n == 0 || n == frame.len() => {}
            Ok(n) => {
                // Part of it went: the rest must follow, or the link breaks.
                let _ = write_frame(&self.conn, &frame[n..]);
            }
            Err(_) => {}
        }
    }
}

static INBOUND: Mutex<Vec<Arc<Inbound>>> = Mutex::new(Vec::new());

/// Links are read by threads of their own (the event loop watches the parent's socket).
static IN_BACKGROUND: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process has links from siblings to read.
pub(crate) fn has_inbound() -> bool {
    !lock(&INBOUND).is_empty()
}

/// Looks at an entry about to be filed: a hello installs its link (and is not filed);
/// a relayed message from a sender that has a link is counted.
pub(crate) fn on_filing(mut entry: Entry) -> Option<Entry> {
    if entry.tag == hello_tag() {
        let fds = entry.take_fds();
        if let Ok([socket, page]) = <[OwnedFd; 2]>::try_from(fds) {
            install(entry.from, socket, &page);
        }
        return None;
    }
    if entry.relayed() {
        if let Some(link) = lock(&INBOUND).iter().find(|l| l.from == entry.from) {
            link.relayed.fetch_add(1, SeqCst);
        }
    }
    Some(entry)
}

/// This child's mailbox's size: the window of the links to it.
static MAILBOX: AtomicU64 = AtomicU64::new(0);

/// Says how many messages this child's mailbox holds.
pub(crate) fn set_mailbox(size: u32) {
    MAILBOX.store(u64::from(size), SeqCst);
}

/// Installs a link from `from`: answers with the window, or drops the descriptors
/// (the sender reads the end of its socket, and relays for good).
fn install(from: Pid, fd: OwnedFd, page: &OwnedFd) {
    let window = MAILBOX.load(SeqCst);
    if window == 0 {
        return;
    }
    let page = match LinkPage::open(page) {
        Ok(page) => page,
        Err(e) => {
            tracing::warn!("cannot map the page of a direct link from {from}: {e}");
            return;
        }
    };
    let conn = Conn::from_fd(fd);
    if write_frame(&conn, &small_frame(ACCEPT, window)).is_err() {
        return;
    }
    let link = Arc::new(Inbound {
        from,
        reader: Mutex::new(FrameReader::new(ParentRead {
            conn: conn.clone(),
            wait: false,
        })),
        conn,
        relayed: AtomicU64::new(0),
        switch_at: AtomicU64::new(u64::MAX),
        page,
    });
    lock(&INBOUND).push(Arc::clone(&link));
    if IN_BACKGROUND.load(SeqCst) {
        read_in_thread(link);
    }
}

/// Reads what has arrived on `link` (waiting for it, on a thread of the link's own,
/// when `wait`) and files it, while the link may be read. Returns how many messages
/// it filed; `None` once the link has ended (it is forgotten).
fn drain(link: &Arc<Inbound>, reader: &mut FrameReader<ParentRead>, wait: bool) -> Option<usize> {
    reader.get_mut().wait = wait;
    let mut filed = 0;
    loop {
        if !link.readable() {
            return Some(filed);
        }
        match reader.read_frame(MAX_FRAME) {
            Ok(Some(frame)) => {
                if !take(link, frame) {
                    end(link);
                    return None;
                }
                filed += 1;
                // What is not in the buffer yet is for the next wait.
                if !reader.has_buffered() {
                    return Some(filed);
                }
            }
            Ok(None) => return Some(filed),
            Err(_) => {
                end(link);
                return None;
            }
        }
    }
}

/// A frame read from `link`: its count, or a message filed. `false` for anything else:
/// the sender broke the link's protocol.
fn take(link: &Arc<Inbound>, frame: Frame) -> bool {
    if let Some((SWITCH, at)) = small_of(frame.payload()) {
        return link.switch_at.swap(at, SeqCst) == u64::MAX;
    }
    let tag = match protocol::kind_of(frame.payload(), &TO_PARENT) {
        Ok(Kind::Routed(tag)) => tag,
        _ => return false,
    };
    let Ok((route, body)) = protocol::route_of(frame.payload(), &TO_PARENT) else {
        return false;
    };
    // A message before the sender's count breaks the protocol too.
    let early = link.switch_at.load(SeqCst) == u64::MAX;
    if route.from != link.from || route.to != local::self_pid() || early {
        return false;
    }
    mailbox::file(Entry::new(
        route.from,
        tag,
        frame,
        body,
        Credit::Direct(Arc::clone(link)),
    ));
    true
}

/// The link has ended: forgotten (its end closes once the messages it brought are
/// taken).
fn end(link: &Arc<Inbound>) {
    lock(&INBOUND).retain(|l| !Arc::ptr_eq(l, link));
}

/// What [`wait_with_parent`] saw.
pub(crate) enum Waited {
    /// The parent's socket has something to read.
    Parent,
    /// Messages from links were filed (or a link ended).
    Filed,
    /// Neither, before the deadline.
    Timeout,
}

/// Waits until the parent's socket has something to read, or a link brought messages
/// (filed here), or `deadline`: a receiving thread waits so in a child whose links are
/// not read in the background.
pub(crate) fn wait_with_parent(parent: &Stream, deadline: Option<Instant>) -> Waited {
    let links: Vec<Arc<Inbound>> = lock(&INBOUND)
        .iter()
        .filter(|l| l.readable())
        .cloned()
        .collect();
    // What is read already needs no wait (a part of a frame does).
    let mut filed = false;
    for link in &links {
        if let Ok(mut reader) = link.reader.try_lock() {
            if reader.has_buffered() {
                filed |= drain(link, &mut reader, false) != Some(0);
            }
        }
    }
    if filed {
        return Waited::Filed;
    }
    let limit = deadline.map_or(Duration::from_secs(1), |d| {
        d.saturating_duration_since(Instant::now())
            .min(Duration::from_secs(1))
    });
    let mut streams: Vec<&Stream> = vec![parent];
    streams.extend(links.iter().map(|l| l.conn.stream()));
    // A sibling answering within a few microseconds is watched for on the links' pages
    // rather than waited for in `poll` (see `spin.rs`), unless something is there to
    // read already. The counts are read before that look: a message written after it
    // moves them. A frame from the parent that comes during the watch is read once the
    // watch ends, at most that much later.
    if !links.is_empty() && !limit.is_zero() {
        let sent: Vec<u64> = links.iter().map(|l| l.page.sent()).collect();
        let idle = sys::poll_readable_any(&streams, Duration::ZERO)
            .is_ok_and(|ready| !ready.contains(&true));
        if idle {
            spin::watch(limit.min(spin::BUDGET), || {
                links.iter().zip(&sent).any(|(l, &n)| l.page.sent() != n)
            });
        }
    }
    let Ok(ready) = sys::poll_readable_any(&streams, limit) else {
        return Waited::Parent;
    };
    for (link, ready) in links.iter().zip(&ready[1..]) {
        if *ready {
            if let Ok(mut reader) = link.reader.try_lock() {
                filed |= drain(link, &mut reader, false) != Some(0);
            }
        }
    }
    if ready[0] {
        Waited::Parent
    } else if filed {
        Waited::Filed
    } else {
        Waited::Timeout
    }
}

/// From now on, links are read by threads of their own: the event loop reads the
/// parent's socket, and receivers wait on the mailbox.
pub(crate) fn read_in_background() {
    if IN_BACKGROUND.swap(true, SeqCst) {
        return;
    }
    let links: Vec<Arc<Inbound>> = lock(&INBOUND).clone();
    for link in links {
        read_in_thread(link);
    }
}

fn read_in_thread(link: Arc<Inbound>) {
    let spawned = std::thread::Builder::new()
        .name("process-runtime-link".into())
        .stack_size(128 * 1024)
        .spawn(move || loop {
            if !link.readable() {
                // Until the relayed messages before the link's first are filed.
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let mut reader = lock(&link.reader);
            if drain(&link, &mut reader, true).is_none() {
                return;
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start a thread to read a direct link: {e}");
    }
}
