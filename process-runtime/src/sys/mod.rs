//! Operating-system specifics behind one interface, so that no `cfg` is scattered
//! through the supervision logic.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;
