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
//!
//! A supervised child's `error` does not run after its last life crashed, was killed
//! or timed out (a plain process then runs it in a fresh child): the failure is the
//! child's end as it is, and the restart follows at once. The restart is how a
//! supervisor handles a failure. Running `error` first would put a second cold start
//! before every restart; running it beside the replacement would run two copies of the
//! child's code from the same state at once, against whatever both use (a port, a
//! file); and its answer could not count either way, since a recovery would turn the
//! crash of a `Transient` child into a normal end that keeps it down (in OTP, a killed
//! child runs no `terminate` either). An error or a panic in a section still runs
//! `error` in the same child before it reports, as for any process, and its answer is
//! the child's end.
//!
//! A restart is spawned on the supervisor's own thread, which outlives its children
//! (it stops them all before it ends), so the start skips the hand-off to the
//! runtime's spawner thread that a start from a short-lived thread needs.

mod engine;
mod nested;
mod policy;
mod running;
mod spec;

pub use running::{ChildInfo, SupervisorError, SupervisorHandle};
pub use spec::{ChildSpec, Restart, Strategy, Supervisor};
