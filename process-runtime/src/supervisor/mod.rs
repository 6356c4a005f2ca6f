//! Supervisors in the manner of Erlang/OTP: a group of child processes restarted by a
//! strategy, within a restart intensity, stopped in reverse start order.
//!
//! (Not to be confused with `parent::supervisor`, the runtime's state machine for one
//! child process and its lives: a supervisor here starts each child through the same
//! `start` any process goes through, and only decides when to start it again.)
//!
//! The layers: [`spec`] is the data a user builds ([`Supervisor`], [`ChildSpec`]),
//! serializable as a whole so that a supervisor can run in a child process
//! ([`nested`]); [`policy`] holds the decisions as pure functions; [`engine`] is the
//! thread that applies them; [`running`] is what the user holds once it started.
//!
//! A nested supervisor is a [`ChildSpec::supervisor`]: a child spec, rather than a
//! supervisor that is itself a `Process`, because a supervisor's children are given
//! as values of many types. Each child's state is kept as its postcard bytes and its
//! type as the tag `derive(Process)` registers in the binary, so a whole tree of
//! specs is plain data that the child process (the same binary) turns back into
//! processes.

mod engine;
mod nested;
mod policy;
mod running;
mod spec;

pub use running::{ChildInfo, SupervisorError, SupervisorHandle};
pub use spec::{ChildSpec, Restart, Strategy, Supervisor};
