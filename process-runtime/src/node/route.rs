//! Where the node's messages go: a message to a pid goes down to the child whose
//! number comes next in the pid's path, or up to the parent when the pid is not below
//! this process; the parent is the router for its children (see `Pid`).
//!
//! Three ways in: [`send`] from user code in this process, [`from_child`] for what
//! the event loop reads from a child, [`from_parent`] for what a child reads from its
//! parent. Each ends in this process's mailbox, in a child's mailbox, or on the way up;
//! what passes through is handed to the [router](super::router), which never makes
//! the event loop wait.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use serde::Serialize;

use super::mailbox::{self, Entry};
use super::router::{self, Hop, Job};
use super::{contacts, local, Credit};
use crate::parent::shared::Shared;
use crate::wire::channel::Frame;
use crate::wire::protocol::{self, Route, TO_CHILD, TO_PARENT};
use crate::{transfer, Pid, ProcessError, SendError};

/// Sends `msg` to `to` from this process; waits for room in the next hop's mailbox
/// when `wait`.
pub(crate) fn send<M: Serialize + 'static>(to: Pid, msg: &M, wait: bool) -> Result<(), SendError> {
    let me = local::self_pid();
    if !to.__is_valid() {
        return Err(SendError::NoProc);
    }
    let tag = process_core::__tag_of::<M>();
    let type_name = std::any::type_name::<M>();
    let route = Route { from: me, to };
    // The descriptors of its `Transfer`s travel with the frame, hop by hop.
    let encode = |prefix: Vec<u8>| transfer::collect(|| process_core::__encode_into(msg, prefix));
    if to == me {
        let (body, fds) = encode(Vec::new())?;
        mailbox::file(Entry::new(
            me,
            tag,
            Frame::owned_with(body, fds),
            0,
            Credit::None,
        ));
        return Ok(());
    }
    // A child knows its parent and its children; of any other process, what the root
    // told it.
    if !me.is_root() && contacts::is_remote(to) && !contacts::alive(to) {
        return Err(SendError::NoProc);
    }
    if let Some(n) = me.__next_hop(to) {
        // The root knows every process of the tree: a message to one that ended goes
        // nowhere.
        if me.is_root() && !super::control::alive_in_root(to) {
            return Err(SendError::NoProc);
        }
        let shared = local::child(n).ok_or(SendError::NoProc)?;
        let (frame, fds) = encode(protocol::routed_prefix(&TO_CHILD, tag, route))?;
        let frame = protocol::seal(frame, type_name)?;
        return crate::parent::mailbox::tell(&shared, frame, fds, wait).map_err(no_proc);
    }
    let Some(port) = crate::child::port::port() else {
        // The root has no parent: every pid but its own is below it.
        return Err(SendError::NoProc);
    };
    let (frame, fds) = encode(protocol::routed_prefix(&TO_PARENT, tag, route))?;
    let frame = protocol::seal(frame, type_name)?;
    // To a sibling, on a direct link once there is one (see `direct`).
    let relay = |frame: Vec<u8>, fds: &[OwnedFd], wait: bool| {
        port.send_frame(frame, fds, wait)
            .map_err(|(e, _)| no_proc(e))
    };
    super::direct::send(to, frame, fds, wait, &relay)
}

/// A next hop that has ended: the receiver has too (or is cut off from this process
/// for good, which is the same to a sender).
fn no_proc(e: SendError) -> SendError {
    match e {
        SendError::Ended => SendError::NoProc,
        e => e,
    }
}

/// A message of the node the event loop read from `sender`, a child of this process,
/// and counted against its grant. A child speaks for itself and the processes below
/// it only: any other sender is a forgery, and ends the child.
pub(crate) fn from_child(
    sender: &Arc<Shared>,
    tag: u64,
    mut frame: Frame,
    control: bool,
) -> Result<(), ProcessError> {
    let (route, body) = protocol::route_of(frame.payload(), &TO_PARENT)?;
    if route.from != sender.id && sender.id.__next_hop(route.from).is_none() {
        return Err(ProcessError::Protocol(format!(
            "the child {} sent a message of the node as {}",
            sender.id, route.from
        )));
    }
    if control {
        return super::control::from_child(route.from, tag, frame, body);
    }
    if tag == super::direct::hello_tag() && !super::direct::may_hand_on(sender, route) {
        // Dropped, and the receiver's end of the link closed with it: the sender reads
        // the end, and relays for good.
        return Ok(());
    }
    let credit = Credit::Child(Arc::clone(sender));
    let me = local::self_pid();
    if route.to == me {
        mailbox::file(Entry::new(route.from, tag, frame, body, credit));
    } else if let Some(n) = me.__next_hop(route.to) {
        if let Some(target) = local::child(n) {
            router::push(Job {
                to: Hop::Down(target),
                fds: frame.take_fds(),
                frame: protocol::reroute_down(frame.payload()),
                credit,
                control: false,
            });
        }
    } else if crate::child::port::port().is_some() {
        router::push(Job {
            to: Hop::Up,
            fds: frame.take_fds(),
            frame: whole(frame.payload()),
            credit,
            control: false,
        });
    }
    // Otherwise nobody has that pid: the message is dropped, its credit given back.
    Ok(())
}

/// A message of the node this child read from its parent, for a process below it;
/// `control` for a notice or reply of the node's own (in no slot).
pub(crate) fn from_parent(route: Route, mut frame: Frame, credit: Credit, control: bool) {
    let me = local::self_pid();
    if let Some(target) = me.__next_hop(route.to).and_then(local::child) {
        router::push(Job {
            to: Hop::Down(target),
            fds: frame.take_fds(),
            frame: whole(frame.payload()),
            credit,
            control,
        });
    }
    // A pid below this process that is not alive: dropped.
}

/// A payload as a whole frame, length prefix included.
pub(crate) fn whole(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + payload.len());
    let len = u32::try_from(payload.len()).expect("no larger than a frame read");
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}
