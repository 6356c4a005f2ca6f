//! What a supervisor is built from: [`ChildSpec`]s and the [`Supervisor`] builder. Both
//! are plain data (a child's state is kept as its postcard bytes and its type as the
//! tag the derive registered), so that a whole supervisor can be sent to a child
//! process and run there: a supervision tree across OS processes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::nested::SupervisorProcess;
use super::running::SupervisorHandle;
use crate::wire::protocol::POSTCARD_LIMITS;
use crate::{Process, ProcessConfig, ProcessError, Section};

/// Which children restart when one of them has to (OTP's restart strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// Only the child that ended is restarted.
    OneForOne,
    /// Every other child is stopped (in reverse start order), then all are started
    /// again in start order.
    OneForAll,
    /// The children started after the one that ended are stopped (in reverse start
    /// order), then it and they are started again in start order.
    RestForOne,
}

/// When a child that ended is restarted (OTP's restart types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Restart {
    /// Always, whether it failed or delivered its result. The default.
    #[default]
    Permanent,
    /// Only after a failure (an error, a panic, a timeout, a crash, a kill); a child
    /// that delivered its result stays ended.
    Transient,
    /// Never: the child is forgotten when it ends, and not restarted along with a
    /// sibling either.
    Temporary,
}

/// One child of a [`Supervisor`]: a name, a process's original state, and its
/// [`Restart`] type.
///
/// Every start of the child, the first and each restart, begins from the state given
/// here (kept serialized), never from what a previous run made of it. The child runs
/// with its type's `#[process(...)]` configuration, named after the spec.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[must_use]
pub struct ChildSpec {
    pub(crate) name: String,
    /// The registration tag of the process type.
    pub(crate) tag: String,
    /// The original state's postcard bytes.
    pub(crate) state: Vec<u8>,
    pub(crate) config: ProcessConfig,
    pub(crate) restart: Restart,
    /// Why the state cannot be sent to a child, reported by `start()`.
    pub(crate) invalid: Option<String>,
}

impl ChildSpec {
    /// A [`Restart::Permanent`] child named `name` that runs `state`.
    ///
    /// The state is serialized here; one that does not survive a postcard round trip
    /// makes the supervisor's `start()` fail with [`ProcessError::State`].
    pub fn new<P: Process>(name: impl Into<String>, state: P) -> Self {
        let name = name.into();
        let (state, invalid) = match encode(&state) {
            Ok(bytes) => (bytes, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        Self {
            config: P::config().with_name(name.clone()),
            name,
            tag: P::__registration().tag().to_owned(),
            state,
            restart: Restart::Permanent,
            invalid,
        }
    }

    /// A [`Restart::Permanent`] child named `name` that is itself a supervisor,
    /// running in its own OS process: a supervision tree.
    ///
    /// Killing that process (SIGKILL from outside included) takes its children with
    /// it, and this supervisor restarts the whole subtree from `supervisor` as given
    /// here. When the child supervisor gives up (its intensity was exceeded), its
    /// process fails with that error, which counts as a failure here: the failure
    /// escalates up the tree. Stopping it stops its children first, with no time limit
    /// of its own (each child's `on_finish` limit bounds it).
    pub fn supervisor(name: impl Into<String>, supervisor: Supervisor) -> Self {
        let name = name.into();
        let invalid = supervisor
            .children
            .iter()
            .find_map(|c| c.invalid.as_ref().map(|e| format!("in `{}`: {e}", c.name)));
        let state = SupervisorProcess::state_of(supervisor);
        let config = ProcessConfig::new(name.clone())
            .with_num_loops(Some(1))
            .with_timeout(Section::MainLoop, None)
            .with_timeout(Section::OnFinish, None);
        Self {
            name,
            tag: SupervisorProcess::tag().to_owned(),
            state,
            config,
            restart: Restart::Permanent,
            invalid,
        }
    }

    /// When the child is restarted; [`Restart::Permanent`] unless set.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// The child's name: its name in the node while it runs, and in errors and logs.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `state`'s postcard bytes, once they are known to decode back.
fn encode<P: Process>(state: &P) -> Result<Vec<u8>, String> {
    let bytes = postcard::to_allocvec(state)
        .map_err(|e| format!("it does not serialize ({e}); {POSTCARD_LIMITS}"))?;
    postcard::from_bytes::<P>(&bytes).map_err(|e| {
        format!("it serializes but does not deserialize back ({e}); {POSTCARD_LIMITS}")
    })?;
    Ok(bytes)
}

/// A supervisor, as built before it starts: its strategy, limits and children.
///
/// ```no_run
/// use std::time::Duration;
/// use process_runtime::{ChildSpec, Restart, Strategy, Supervisor};
/// # use process_runtime::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Process, Serialize, Deserialize, Default)]
/// # struct Db;
/// # impl Lifecycle for Db {
/// #     type Output = ();
/// #     fn main_loop(&mut self, _: &mut Context) -> Outcome { Ok(()) }
/// #     fn result(&mut self, _: &mut Context) -> Result<(), BoxError> { Ok(()) }
/// # }
/// let sup = Supervisor::new(Strategy::OneForOne)
///     .intensity(3, Duration::from_secs(5))
///     .backoff(Duration::from_millis(10), Duration::from_secs(1))
///     .child(ChildSpec::new("db", Db).restart(Restart::Permanent))
///     .start()?;
/// for c in sup.which_children() {
///     println!("{} {:?} {}", c.name, c.pid, c.restarts);
/// }
/// sup.stop();
/// # Ok::<(), ProcessError>(())
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[must_use]
pub struct Supervisor {
    pub(crate) strategy: Strategy,
    pub(crate) intensity: u32,
    pub(crate) period: Duration,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) children: Vec<ChildSpec>,
}

impl Supervisor {
    /// A supervisor with no children, OTP's default intensity (at most 1 restart in
    /// 5 s), and restarts spaced from 10 ms up to 1 s.
    pub fn new(strategy: Strategy) -> Self {
        Self {
            strategy,
            intensity: 1,
            period: Duration::from_secs(5),
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_secs(1),
            children: Vec::new(),
        }
    }

    /// More than `max` restarts within `period` (of all children together) and the
    /// supervisor gives up: it stops every child and [`SupervisorHandle::wait`]
    /// returns the error. `max = 0` gives up at the first restart.
    pub fn intensity(mut self, max: u32, period: Duration) -> Self {
        self.intensity = max;
        self.period = period;
        self
    }

    /// The spacing of one child's restarts: the first restart after a quiet period
    /// (the intensity `period` with no restart of that child) is immediate, the next
    /// ones wait `min`, then twice as long each time, up to `max`. A child that keeps
    /// failing is restarted at most once per `max`, never in a hot loop.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }

    /// Adds a child, started after the ones added before it.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Starts the children in order, each registered in the node under its name, and
    /// supervises them from a thread of this process until
    /// [`SupervisorHandle::stop`] (or the handle's drop).
    ///
    /// # Errors
    /// [`ProcessError::Config`] for two children of one name or a name that is
    /// registered already; [`ProcessError::State`] for a child whose state cannot be
    /// sent; the error of a child that cannot be started (the children started
    /// before it are stopped again, in reverse order).
    pub fn start(self) -> Result<SupervisorHandle, ProcessError> {
        super::engine::start(self)
    }
}
