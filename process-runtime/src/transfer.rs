//! [`Transfer`]: a socket or file that crosses to another process as the descriptor
//! itself, inside a state or a message.
//!
//! Serde sees a `Transfer` as a number: while the runtime encodes a state or a
//! message, it collects a duplicate of each descriptor in a list of the encoding
//! thread's, and the number is its place there; the frame then carries the list
//! (`SCM_RIGHTS`, see `wire/descriptors.rs`). On the other side, while the runtime
//! decodes that frame, the descriptors it carried wait in a table of the decoding
//! thread's, and each `Transfer` takes its own by number; whatever nobody took is
//! closed when the decoding ends. Outside those two moments there is no list and no
//! table, so a `Transfer` encoded by anything else (JSON, a file) is an error rather
//! than a number that means nothing.

use std::cell::RefCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, OwnedFd};

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A descriptor-owning value (`TcpListener`, `TcpStream`, `UnixStream`,
/// `UnixListener`, `File`, `OwnedFd`, ...) that travels to another process as the
/// descriptor itself, never as bytes: put it in a process's state or in a message
/// (`h.tell`, `cx.tell`, `node::send`), and the other side gets the same kind of
/// object, usable at
/// once, on the same open socket or file.
///
/// ```no_run
/// use std::net::TcpListener;
/// use process_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Process, Serialize, Deserialize)]
/// struct Worker {
///     listener: Transfer<TcpListener>,
/// }
///
/// impl Lifecycle for Worker {
///     type Output = ();
///     fn main_loop(&mut self, cx: &mut Context) -> Outcome {
///         let (_conn, _peer) = self.listener.accept()?; // Deref to the listener
///         cx.stop();
///         Ok(())
///     }
///     fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
///         Ok(())
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let h = Worker { listener: Transfer::new(listener.try_clone()?) }.start()?;
/// # Ok(()) }
/// ```
///
/// What is sent is a duplicate: the sender's value stays open until it drops it (drop
/// an accepted stream once it is handed over, or the connection stays open on this
/// side too). In a state, the parent keeps its own duplicate until the process ends,
/// and each attempt (`lives`) receives a fresh one. Descriptors in a message that is
/// never read are closed when the receiving process ends, and a message or state
/// that cannot be delivered closes what it carried.
///
/// It travels only where the runtime encodes: a process's state and messages
/// (`h.tell`, `cx.tell`, `node::send`, through every process that relays them).
/// Anywhere else (another serde format, a process's output) its encoding fails with
/// an error that says so.
pub struct Transfer<T>(T);

impl<T> Transfer<T> {
    /// Wraps `inner` to travel as a descriptor.
    pub fn new(inner: T) -> Self {
        Self(inner)
    }

    /// The value itself.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Transfer<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Transfer<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> From<T> for Transfer<T> {
    fn from(inner: T) -> Self {
        Self(inner)
    }
}

impl<T: fmt::Debug> fmt::Debug for Transfer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Transfer").field(&self.0).finish()
    }
}

impl<T: AsFd> Serialize for Transfer<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let index = self
            .0
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| format!("cannot duplicate the descriptor of a Transfer: {e}"))
            .and_then(push_outgoing)
            .map_err(|why| {
                process_core::__explain(why.clone());
                S::Error::custom(why)
            })?;
        serializer.serialize_u32(index)
    }
}

impl<'de, T: From<OwnedFd>> Deserialize<'de> for Transfer<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let index = u32::deserialize(deserializer)?;
        take_incoming(index)
            .map(|fd| Self(T::from(fd)))
            .map_err(|why| {
                process_core::__explain(why.clone());
                D::Error::custom(why)
            })
    }
}

thread_local! {
    /// The descriptors of the state or message being encoded on this thread.
    static OUTGOING: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    /// The descriptors of the frame being decoded on this thread, until taken.
    static INCOMING: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
}

/// Why a `Transfer` cannot be encoded here.
const NOT_HERE: &str = "a Transfer travels only in a process's state or in a message \
                        (`tell`, `node::send`), encoded by process-runtime";

fn push_outgoing(fd: OwnedFd) -> Result<u32, String> {
    OUTGOING.with_borrow_mut(|list| {
        let list = list.as_mut().ok_or(NOT_HERE)?;
        if list.len() >= crate::wire::descriptors::MAX_FDS {
            return Err(format!(
                "one state or message may carry at most {} descriptors",
                crate::wire::descriptors::MAX_FDS
            ));
        }
        list.push(fd);
        Ok(u32::try_from(list.len() - 1).expect("at most MAX_FDS"))
    })
}

fn take_incoming(index: u32) -> Result<OwnedFd, String> {
    INCOMING.with_borrow_mut(|table| {
        let slot = table
            .as_mut()
            .and_then(|table| table.get_mut(index as usize));
        match slot {
            Some(slot) => slot
                .take()
                .ok_or_else(|| format!("descriptor {index} of the frame was taken twice")),
            None => Err(format!("the frame carried no descriptor {index}")),
        }
    })
}

/// Starts collecting the descriptors of what this thread encodes next; what a previous
/// collection left (an encoding that failed half-way) is closed.
pub(crate) fn begin_collect() {
    OUTGOING.set(Some(Vec::new()));
}

/// Ends the collection [`begin_collect`] started: the descriptors, in the order of
/// their numbers.
pub(crate) fn end_collect() -> Vec<OwnedFd> {
    OUTGOING.take().unwrap_or_default()
}

/// Runs `encode`, collecting the descriptors of the `Transfer`s it encodes; on error
/// they are closed.
pub(crate) fn collect<R, E>(encode: impl FnOnce() -> Result<R, E>) -> Result<(R, Vec<OwnedFd>), E> {
    begin_collect();
    let result = encode();
    let fds = end_collect();
    result.map(|r| (r, fds))
}

/// Runs `decode` with `fds` (a frame's descriptors) to take from; those it did not
/// take are closed when it returns. Without descriptors, nothing is set up.
pub(crate) fn with_received<R>(fds: Vec<OwnedFd>, decode: impl FnOnce() -> R) -> R {
    if fds.is_empty() {
        return decode();
    }
    let previous = INCOMING.replace(Some(fds.into_iter().map(Some).collect()));
    let result = decode();
    drop(INCOMING.replace(previous));
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn a_transfer_encodes_as_its_place_and_decodes_from_the_table() {
        let mut file = std::fs::File::from(tempfile());
        file.write_all(b"hello").unwrap();
        let value = (7u8, Transfer::new(file));
        let (bytes, fds) = collect(|| postcard::to_allocvec(&value)).unwrap();
        assert_eq!(bytes, [7, 0]);
        assert_eq!(fds.len(), 1);
        let (_, got): (u8, Transfer<std::fs::File>) =
            with_received(fds, || postcard::from_bytes(&bytes)).unwrap();
        let mut got = got.into_inner();
        got.rewind().unwrap();
        let mut text = String::new();
        got.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");
    }

    #[test]
    fn outside_the_runtime_it_is_an_error_that_says_why() {
        let t = Transfer::new(tempfile());
        let e = postcard::to_allocvec(&t).unwrap_err();
        assert_eq!(
            process_core::__cause(&e),
            "a Transfer travels only in a process's state or in a message (`tell`, \
             `node::send`), encoded by process-runtime"
        );
        let (bytes, fds) = collect(|| postcard::to_allocvec(&(t,))).unwrap();
        drop(fds);
        let e = postcard::from_bytes::<(Transfer<OwnedFd>,)>(&bytes).unwrap_err();
        assert_eq!(
            process_core::__cause(&e),
            "the frame carried no descriptor 0"
        );
        let mut text = String::new();
        let r = with_received(vec![tempfile()], || {
            let twice = postcard::from_bytes::<(Transfer<OwnedFd>, Transfer<OwnedFd>)>(&[0, 0]);
            text = take_incoming(3).unwrap_err();
            twice.map(|_| ())
        });
        assert_eq!(
            process_core::__cause(&r.unwrap_err()),
            "descriptor 0 of the frame was taken twice"
        );
        assert_eq!(text, "the frame carried no descriptor 3");
    }

    fn tempfile() -> OwnedFd {
        let path = std::env::temp_dir().join(format!(
            "process-runtime-transfer-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file.into()
    }
}
