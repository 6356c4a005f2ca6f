//! Messages between a parent and its child: the errors a user sees, the type tag, and
//! the port through which a [`Context`](crate::Context) reaches the runtime.
//!
//! A message is any `Serialize + DeserializeOwned + 'static` type. On the wire it is
//! postcard bytes behind a tag, a hash of the type's name: parent and child are the same
//! build (checked at the handshake), so equal names mean equal types, and a receive that
//! names `T` takes the oldest message tagged for `T` and leaves the others queued in the
//! order they came.

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why no message could be received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// No message of the wanted type arrived within the time limit.
    #[error("no message of the wanted type arrived in time")]
    Timeout,
    /// The other end has ended, and no message of the wanted type is left.
    #[error("the other end has ended and no message of the wanted type is left")]
    Ended,
    /// A message with the wanted type's tag failed to decode. It is consumed.
    #[error("a message of type `{type_name}` could not be decoded: {cause}")]
    Decode {
        /// The type the receive asked for.
        type_name: String,
        /// What postcard said.
        cause: String,
    },
    /// The channel carried something that is not a message frame.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The receiver's mailbox holds as many unread messages as it may (`try_tell`
    /// only; `tell` waits for room instead).
    #[error("the receiver's mailbox is full")]
    Full,
    /// The receiver has ended: nothing more can reach it.
    #[error("the receiver has ended")]
    Ended,
    /// No process has this pid any more (it ended), or none ever had it (`node::send`).
    #[error("no such process: it has ended, or never existed")]
    NoProc,
    /// The message could not be encoded.
    #[error("a message of type `{type_name}` could not be encoded: {cause}")]
    Encode {
        /// The type of the message.
        type_name: String,
        /// What postcard said.
        cause: String,
    },
}

/// The tag of message type `T`: a 64-bit FNV-1a hash of its type name.
#[doc(hidden)]
#[must_use]
pub fn __tag_of<T: ?Sized + 'static>() -> u64 {
    fnv1a(std::any::type_name::<T>().as_bytes())
}

const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

std::thread_local! {
    /// Why a serde impl of the runtime's failed, for the error postcard reports: its
    /// own error keeps no text ("Serde Serialization Error").
    static EXPLAINED: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Records why a serde impl is about to fail, so that the error of the encoding or
/// decoding that called it says so (postcard's custom errors keep no text).
#[doc(hidden)]
pub fn __explain(why: String) {
    EXPLAINED.set(Some(why));
}

/// The text of a postcard error: what [`__explain`] recorded, if anything, else
/// postcard's own.
#[doc(hidden)]
#[must_use]
pub fn __cause(e: &postcard::Error) -> String {
    let explained = EXPLAINED.take();
    match e {
        postcard::Error::SerdeSerCustom | postcard::Error::SerdeDeCustom => {
            explained.unwrap_or_else(|| e.to_string())
        }
        _ => e.to_string(),
    }
}

/// Appends `msg`'s postcard bytes to `buf`.
#[doc(hidden)]
pub fn __encode_into<T: Serialize + 'static>(msg: &T, buf: Vec<u8>) -> Result<Vec<u8>, SendError> {
    postcard::to_extend(msg, buf).map_err(|e| SendError::Encode {
        type_name: std::any::type_name::<T>().to_owned(),
        cause: __cause(&e),
    })
}

/// Decodes a message body as `T`, rejecting bytes left over.
#[doc(hidden)]
pub fn __decode<T: DeserializeOwned + 'static>(body: &[u8]) -> Result<T, RecvError> {
    let fail = |cause: String| RecvError::Decode {
        type_name: std::any::type_name::<T>().to_owned(),
        cause,
    };
    let (value, rest) = postcard::take_from_bytes(body).map_err(|e| fail(__cause(&e)))?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(fail(format!("{} unexpected trailing bytes", rest.len())))
    }
}

/// When a receive with `timeout` gives up: `None` waits for ever (so does a timeout too
/// long to add to now).
#[doc(hidden)]
#[must_use]
pub fn __deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// How a child's [`Context`](crate::Context) reaches its parent. Implemented by the
/// runtime; a context built in-process has none, and its sends and receives report
/// [`SendError::Ended`] and [`RecvError::Ended`].
#[doc(hidden)]
pub trait __Port: Send {
    /// Sends one message of type `type_name`: `frame` is what
    /// [`__Port::frame_prefix`] returned with the message's bytes appended. Waits for
    /// room in the parent's mailbox when `wait`.
    fn send(
        &mut self,
        frame: Vec<u8>,
        type_name: &'static str,
        wait: bool,
    ) -> Result<(), SendError>;
    /// The start of a message frame for `tag`, to append the message's bytes to.
    fn frame_prefix(&self, tag: u64) -> Vec<u8>;
    /// The message begun with [`__Port::frame_prefix`] could not be encoded and will
    /// not be sent: whatever its encoding gathered is let go.
    fn abandon(&mut self) {}
    /// Takes the oldest message tagged `tag`, waiting until `deadline` (`None`: for
    /// ever), and hands its body to `take`.
    fn recv(
        &mut self,
        tag: u64,
        deadline: Option<Instant>,
        take: &mut dyn FnMut(&[u8]),
    ) -> Result<(), RecvError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_the_type_name() {
        assert_eq!(__tag_of::<u64>(), __tag_of::<u64>());
        assert_ne!(__tag_of::<u64>(), __tag_of::<u32>());
        assert_ne!(__tag_of::<String>(), __tag_of::<Vec<u8>>());
        // FNV-1a's published test vector for "a".
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn a_body_with_trailing_bytes_is_a_decode_error_naming_the_type() {
        let mut body = postcard::to_allocvec(&7u32).unwrap();
        body.push(0);
        assert_eq!(
            __decode::<u32>(&body),
            Err(RecvError::Decode {
                type_name: "u32".into(),
                cause: "1 unexpected trailing bytes".into()
            })
        );
        assert_eq!(__decode::<u32>(&body[..1]), Ok(7));
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            RecvError::Timeout.to_string(),
            "no message of the wanted type arrived in time"
        );
        assert_eq!(
            RecvError::Ended.to_string(),
            "the other end has ended and no message of the wanted type is left"
        );
        assert_eq!(
            SendError::Full.to_string(),
            "the receiver's mailbox is full"
        );
        assert_eq!(SendError::Ended.to_string(), "the receiver has ended");
    }
}
