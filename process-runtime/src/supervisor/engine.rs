//! The supervising thread: starts the children, sees them end, applies the policy
//! (restart? which ones? too fast?), spaces the restarts, and stops everything in
//! reverse start order at the end.
//!
//! It sleeps until something changes: a waker registered with every running child's
//! shared state pokes the board the handle also uses for a stop, and the only timed
//! wait is for the next restart due after a backoff. Ends are seen level-wise (a child
//! whose state says it ended), so a change that comes while the thread is busy
//! stopping siblings is found on the next look, never lost.

use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use super::policy::{self, Backoff, Ending, Intensity};
use super::running::{Board, BoardChild, Poke, SupervisorError, SupervisorHandle};
use super::{ChildSpec, Restart, Supervisor};
use crate::node::{self, ExitReason, RegistryError};
use crate::parent::attempt::StartOptions;
use crate::parent::shared::Shared;
use crate::parent::wakers::Registration;
use crate::{ProcessError, Section};

/// How long a child that was stopped and then killed is waited for.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// Starts `sup`'s children in order and the thread that supervises them.
pub(crate) fn start(sup: Supervisor) -> Result<SupervisorHandle, ProcessError> {
    check(&sup)?;
    let board = Arc::new(Board::default());
    let mut engine = Engine::new(sup, Arc::clone(&board));
    for i in 0..engine.slots.len() {
        if let Err(e) = engine.start_child(i, false) {
            engine.stop_all();
            return Err(e);
        }
    }
    engine.publish_children();
    let thread = std::thread::Builder::new()
        .name("process-runtime-supervisor".into())
        .spawn(move || engine.run())
        .map_err(|e| ProcessError::Io(format!("cannot start the supervisor's thread: {e}")))?;
    Ok(SupervisorHandle {
        board,
        thread: Some(thread),
    })
}

/// What `start` refuses before anything runs.
fn check(sup: &Supervisor) -> Result<(), ProcessError> {
    for (i, child) in sup.children.iter().enumerate() {
        if let Some(e) = &child.invalid {
            return Err(ProcessError::State(format!(
                "child `{}` of the supervisor: {e}",
                child.name
            )));
        }
        if sup.children[..i].iter().any(|c| c.name == child.name) {
            return Err(ProcessError::Config(format!(
                "two children of the supervisor are named `{}`",
                child.name
            )));
        }
        if node::whereis(&child.name).is_some() {
            return Err(ProcessError::Config(format!(
                "child `{}` of the supervisor: the name is registered in the node already",
                child.name
            )));
        }
        if crate::registry::static_tag(&child.tag).is_none() {
            return Err(ProcessError::Config(format!(
                "child `{}` of the supervisor: this build has no process type `{}`",
                child.name, child.tag
            )));
        }
        child.config.validate()?;
    }
    Ok(())
}

/// One child and what the supervisor keeps about it.
struct Slot {
    spec: ChildSpec,
    tag: &'static str,
    running: Option<Arc<Shared>>,
    /// When it is to start again, once its restart is decided.
    due: Option<Instant>,
    restarts: u32,
    backoff: Backoff,
    /// A temporary child that ended: no longer listed, never started again.
    gone: bool,
}

struct Engine {
    sup: Supervisor,
    slots: Vec<Slot>,
    intensity: Intensity,
    board: Arc<Board>,
    waker: Waker,
}

impl Engine {
    fn new(mut sup: Supervisor, board: Arc<Board>) -> Self {
        let slots = std::mem::take(&mut sup.children)
            .into_iter()
            .map(|spec| Slot {
                tag: crate::registry::static_tag(&spec.tag).expect("checked by `check`"),
                spec,
                running: None,
                due: None,
                restarts: 0,
                backoff: Backoff::default(),
                gone: false,
            })
            .collect();
        let waker = Waker::from(Arc::new(Poke(Arc::clone(&board))));
        Self {
            intensity: Intensity::new(sup.intensity, sup.period),
            sup,
            slots,
            board,
            waker,
        }
    }

    /// Supervises until a stop, or until the intensity is exceeded.
    fn run(mut self) {
        let outcome = loop {
            if self.board.lock().stop_requested {
                break Ok(());
            }
            if let Err(e) = self.handle_ends() {
                break Err(e);
            }
            if let Err(e) = self.start_due() {
                break Err(e);
            }
            self.publish_children();
            // Registered before the last look, so that a change after it wakes us.
            let watched: Vec<Arc<Shared>> = self
                .slots
                .iter()
                .filter_map(|s| s.running.clone())
                .collect();
            let registrations: Vec<Registration<'_>> = watched
                .iter()
                .map(|shared| {
                    let mut r = Registration::new(&shared.wakers);
                    r.set(&self.waker);
                    r
                })
                .collect();
            if !watched.iter().any(|s| s.lock().finished()) {
                self.sleep();
            }
            drop(registrations);
        };
        self.stop_all();
        self.publish_children();
        if let Err(e) = &outcome {
            tracing::error!("{e}");
        }
        self.board.update(|s| s.outcome = Some(outcome));
    }

    /// Sleeps until poked or until the next restart is due.
    fn sleep(&self) {
        let next_due = self.slots.iter().filter_map(|s| s.due).min();
        let mut state = self.board.lock();
        while !state.poked {
            match next_due {
                None => state = self.board.wait(state),
                Some(due) => {
                    let now = Instant::now();
                    if now >= due {
                        break;
                    }
                    state = self.board.wait_timeout(state, due - now);
                }
            }
        }
        state.poked = false;
    }

    /// Looks at every running child; decides what each end means.
    fn handle_ends(&mut self) -> Result<(), SupervisorError> {
        for i in 0..self.slots.len() {
            let Some(shared) = &self.slots[i].running else {
                continue;
            };
            let (ending, reason, stopped) = {
                let inner = shared.lock();
                let Some(end) = &inner.end else { continue };
                let (ending, reason) = classify(&end.report);
                (ending, reason, inner.stop_requested)
            };
            crate::timeline::mark("supervisor saw the end");
            self.slots[i].running = None;
            if stopped {
                // Stopped by someone else: a shutdown of the program, or the stop
                // of this supervisor's own process passed on to its children.
                continue;
            }
            self.child_ended(i, ending, reason)?;
        }
        Ok(())
    }

    fn child_ended(
        &mut self,
        i: usize,
        ending: Ending,
        reason: ExitReason,
    ) -> Result<(), SupervisorError> {
        let restart = self.slots[i].spec.restart;
        if ending == Ending::Failure {
            tracing::warn!(child = %self.slots[i].spec.name, "supervised child ended: {reason}");
        }
        if !policy::restarts(restart, ending) {
            if restart == Restart::Temporary {
                self.slots[i].gone = true;
            }
            return Ok(());
        }
        let now = Instant::now();
        let (count, exceeded) = self.intensity.record(now);
        if exceeded {
            return Err(SupervisorError::Intensity {
                child: self.slots[i].spec.name.clone(),
                restarts: count,
                max: self.sup.intensity,
                period: self.sup.period,
                reason: Box::new(reason),
            });
        }
        let delay = self.slots[i].backoff.delay(
            now,
            self.sup.backoff_min,
            self.sup.backoff_max,
            self.sup.period,
        );
        let due = now + delay;
        let group = policy::group(self.sup.strategy, i, self.slots.len());
        // The others of the group stop first, the last started first.
        for j in group.clone().rev() {
            if j != i && !self.slots[j].gone {
                self.stop_child(j);
                if self.slots[j].spec.restart == Restart::Temporary {
                    self.slots[j].gone = true;
                }
            }
        }
        for j in group {
            let slot = &mut self.slots[j];
            if !slot.gone && (j == i || slot.due.is_none()) {
                slot.due = Some(due);
                slot.restarts += 1;
            }
        }
        Ok(())
    }

    /// Starts, in start order, the children whose restart is due. One that cannot be
    /// started has failed, as if it had started and crashed.
    fn start_due(&mut self) -> Result<(), SupervisorError> {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            if slot.gone || slot.running.is_some() || slot.due.is_none_or(|d| d > now) {
                continue;
            }
            self.slots[i].due = None;
            if let Err(e) = self.start_child(i, true) {
                if e == ProcessError::ShuttingDown {
                    continue;
                }
                tracing::warn!(child = %self.slots[i].spec.name, "restart failed: {e}");
                self.child_ended(i, Ending::Failure, ExitReason::Error(e))?;
            }
        }
        Ok(())
    }

    /// Starts the child at `i` from its original state and registers its name.
    /// `on_own_thread` when called from the supervisor's thread, which outlives its
    /// children: a cold child is spawned right there.
    fn start_child(&mut self, i: usize, on_own_thread: bool) -> Result<(), ProcessError> {
        crate::timeline::mark("replacement spawn begins");
        let slot = &mut self.slots[i];
        let shared = crate::parent::start::start_encoded(
            slot.tag,
            slot.spec.state.clone(),
            // A child spec's state holds no descriptors: it is encoded outside a
            // start, where a `Transfer` refuses to be.
            Vec::new().into(),
            slot.spec.config.clone(),
            StartOptions::default().supervised(on_own_thread),
        )?;
        crate::timeline::mark("replacement spawned");
        register(&slot.spec.name, &shared);
        crate::timeline::mark("replacement registered");
        slot.running = Some(shared);
        Ok(())
    }

    /// Stops the child at `i` if it runs: a stop request, its `on_finish` limit, then
    /// a kill.
    fn stop_child(&mut self, i: usize) {
        let Some(shared) = self.slots[i].running.take() else {
            return;
        };
        shared.request_stop();
        let limit = shared.config.timeouts.get(Section::OnFinish);
        let deadline = limit.and_then(|l| Instant::now().checked_add(l));
        if !shared.wait_until(deadline, |inner| inner.finished()).1 {
            tracing::warn!(
                child = %self.slots[i].spec.name,
                "the child did not stop within its on_finish limit; killing it"
            );
            shared.request_kill();
            let deadline = Instant::now().checked_add(KILL_GRACE);
            drop(shared.wait_until(deadline, |inner| inner.finished()));
        }
    }

    /// Stops every child, the last started first.
    fn stop_all(&mut self) {
        for i in (0..self.slots.len()).rev() {
            self.slots[i].due = None;
            self.stop_child(i);
        }
    }

    /// Shows the children as they are now to the handle.
    fn publish_children(&self) {
        let children = self
            .slots
            .iter()
            .filter(|s| !s.gone)
            .map(|s| BoardChild {
                name: s.spec.name.clone(),
                running: s.running.clone(),
                restarts: s.restarts,
            })
            .collect();
        // Not through `update`: the thread itself need not be poked by its own news.
        self.board.lock().children = children;
    }
}

/// What an end means to the restart types, and the reason to report.
fn classify<T>(report: &Result<T, ProcessError>) -> (Ending, ExitReason) {
    match report {
        Ok(_) => (Ending::Normal, ExitReason::Normal),
        Err(ProcessError::Exited { reason, .. })
            if matches!(**reason, ExitReason::Normal | ExitReason::Shutdown) =>
        {
            (Ending::Normal, (**reason).clone())
        }
        Err(e) => (Ending::Failure, ExitReason::Error(e.clone())),
    }
}

/// Registers `name` for the child just started. The previous run's registration is
/// normally gone by now; in a nested supervisor its end may still be on its way to
/// the root, so a name still held by a process that has ended is taken over.
fn register(name: &str, shared: &Shared) {
    for _ in 0..100 {
        match node::register(name, shared.id) {
            Ok(()) => return,
            Err(RegistryError::Taken { .. }) => {
                if let Some(holder) = node::whereis(name) {
                    if node::is_alive(holder) {
                        tracing::warn!(name, "the name is held by another process: not registered");
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => {
                tracing::warn!(name, "cannot register the child: {e}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Pid, RemoteError};

    #[test]
    fn ends_are_classified_as_otp_reads_exit_reasons() {
        assert_eq!(
            classify::<()>(&Ok(())),
            (Ending::Normal, ExitReason::Normal)
        );
        let exited = |reason| ProcessError::Exited {
            from: Pid::ROOT,
            reason: Box::new(reason),
        };
        // `node::exit` with `Shutdown` is a normal end for a transient child.
        assert_eq!(
            classify::<()>(&Err(exited(ExitReason::Shutdown))),
            (Ending::Normal, ExitReason::Shutdown)
        );
        let failed = ProcessError::MainLoop(RemoteError::msg("boom"));
        assert_eq!(
            classify::<()>(&Err(failed.clone())),
            (Ending::Failure, ExitReason::Error(failed))
        );
        assert_eq!(
            classify::<()>(&Err(ProcessError::Killed)).0,
            Ending::Failure
        );
    }
}
