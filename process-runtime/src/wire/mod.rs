//! What crosses between a parent and its child: frames on the socket, and the hand-over
//! of descriptors and secret at start. Neither side's logic lives here.

pub(crate) mod channel;
pub(crate) mod descriptors;
pub(crate) mod handoff;
pub(crate) mod protocol;
pub(crate) mod spare;
