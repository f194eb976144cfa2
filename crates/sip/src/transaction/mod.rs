//! The transaction layer, sans-IO: RFC 3261 §17 with RFC 6026's Accepted states.
//!
//! It owns the four state machines and nothing above them:
//! - the **INVITE server transaction** (`server.rs`): Proceeding; Completed after a
//!   non-2xx final, retransmitted on Timer G (UDP) until the ACK or Timer H; Confirmed
//!   with Timer I; Accepted after a 2xx (RFC 6026), absorbing INVITE retransmissions
//!   until Timer L;
//! - the **non-INVITE server transaction**: answered once, the answer repeated for
//!   every retransmitted request until Timer J;
//! - the **INVITE client transaction** (`client.rs`): Timer A (UDP) and B; the ACK of
//!   a non-2xx final is the transaction's own, repeated for retransmitted finals until
//!   Timer D; after a 2xx Accepted until Timer M, every 2xx (retransmissions, other
//!   forks) passed up;
//! - the **non-INVITE client transaction**: Timers E (UDP), F and K.
//!
//! Messages find their transaction by branch, sent-by and method (`key.rs`);
//! retransmissions are absorbed here and never reach the layer above. The *transaction
//! user* above — the dialog layer, and the trunk for its REGISTER and OPTIONS — sees
//! [`TxEvent`]s (a new request, a response for one of its client transactions, a
//! timeout, a transport error, the end of a client transaction) and gives commands:
//! [`TransactionLayer::respond`], [`TransactionLayer::start_client`],
//! [`TransactionLayer::cancel`], [`TransactionLayer::send_direct`] for what belongs to
//! no transaction (the ACK of a 2xx, a 2xx the dialog retransmits, stateless replies).
//!
//! Like every layer here it never reads a clock or touches a socket: it is fed `now`,
//! queues datagrams ([`TransactionLayer::poll_transmit`]) and events
//! ([`TransactionLayer::poll_event`]), and says when it next needs to run
//! ([`TransactionLayer::poll_timeout`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsipstack::sip as rsip;
use rsipstack::sip::Method;
use tongdai_capacity::GiveBack;

use crate::flow::Flow;

mod client;
mod key;
mod server;

use client::{InviteClientTxn, NonInviteClientTxn};
pub use key::TxId;
use server::{InviteServerTxn, NonInviteServerTxn};

/// RFC 3261 timer base values.
#[derive(Clone, Debug)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// What the transaction layer writes into the requests it builds.
#[derive(Clone, Debug)]
pub struct TransactionConfig {
    /// Sent-by of our Via headers.
    pub advertised: SocketAddr,
    pub timers: Timers,
    /// `User-Agent` of our requests.
    pub user_agent: String,
}

/// A request for a new client transaction, as the transaction user built it. The layer
/// renders it in this order: request line, top Via (our sent-by, the flow's transport,
/// a new branch, `rport`), Max-Forwards, Route, From, To, Call-ID, CSeq, `headers`,
/// User-Agent, Content-Type, Content-Length, body.
#[derive(Clone, Debug)]
pub struct ClientRequest {
    pub method: Method,
    /// The Request-URI.
    pub uri: String,
    /// Route header values, in order.
    pub route: Vec<String>,
    /// From, with our tag.
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub cseq: u32,
    /// Any other header lines, complete (`Name: value\r\n`).
    pub headers: String,
    /// Content type and body.
    pub body: Option<(&'static str, Vec<u8>)>,
}

/// What the transaction layer tells its user.
#[derive(Debug)]
pub enum TxEvent {
    /// A request that is not a retransmission, in a new server transaction (INVITE or
    /// non-INVITE) that waits for [`TransactionLayer::respond`].
    Request {
        id: TxId,
        flow: Flow,
        request: rsip::Request,
    },
    /// A CANCEL in its own non-INVITE server transaction `id`; `invite` is the INVITE
    /// server transaction it names, if we have one (RFC 3261 §9.2). The user answers the
    /// CANCEL (200, or 481 without `invite`) and, if the INVITE is still unanswered, the
    /// INVITE (487).
    Cancel {
        id: TxId,
        flow: Flow,
        request: rsip::Request,
        invite: Option<TxId>,
    },
    /// An ACK that is not the ACK of one of our non-2xx finals: the ACK of a 2xx, which
    /// belongs to the dialog (RFC 3261 §13.3.1.4, RFC 6026).
    Ack { flow: Flow, request: rsip::Request },
    /// A request no transaction can be made of (no Via or CSeq to match it by): the user
    /// answers it statelessly, if at all.
    Unmatched { flow: Flow, request: rsip::Request },
    /// A response to client transaction `id`: provisionals and the final of an INVITE,
    /// every 2xx of an INVITE (retransmissions and other forks too: the ACK of a 2xx is
    /// the user's), the first final of a non-INVITE.
    Response { id: TxId, response: rsip::Response },
    /// Client transaction `id` got no final response: Timer B or F. It is gone.
    Timeout { id: TxId },
    /// Client transaction `id` lost its TCP connection before a final response (treated
    /// as a 503, RFC 3261 §8.1.3.1). It is gone.
    TransportError { id: TxId },
    /// Client transaction `id` ended after its final response (Timer D, K or M): no more
    /// responses will be passed up for it, so its user may forget what it kept for them.
    Terminated { id: TxId },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerRef {
    Ist(TxId),
    Nist(TxId),
    Ict(TxId),
    Nict(TxId),
}

pub struct TransactionLayer {
    cfg: TransactionConfig,
    ist: HashMap<TxId, InviteServerTxn>,
    nist: HashMap<TxId, NonInviteServerTxn>,
    ict: HashMap<TxId, InviteClientTxn>,
    nict: HashMap<TxId, NonInviteClientTxn>,
    timers: BinaryHeap<Reverse<(Instant, TimerRef)>>,
    transmits: VecDeque<(Flow, Vec<u8>)>,
    events: VecDeque<TxEvent>,
}

impl TransactionLayer {
    pub fn new(cfg: TransactionConfig) -> Self {
        TransactionLayer {
            cfg,
            ist: HashMap::new(),
            nist: HashMap::new(),
            ict: HashMap::new(),
            nict: HashMap::new(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Transactions alive, of all four kinds.
    pub fn len(&self) -> usize {
        self.ist.len() + self.nist.len() + self.ict.len() + self.nict.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `req` concerns a server transaction we hold: a retransmission, the ACK of
    /// one of our finals, or a CANCEL of an INVITE we have. (The source ACL lets such a
    /// request through from anywhere.)
    pub fn matches_server(&self, req: &rsip::Request) -> bool {
        let Some(id) = TxId::of_request(req) else {
            return false;
        };
        self.ist.contains_key(&id)
            || self.nist.contains_key(&id)
            || (req.method == Method::Cancel
                && TxId::invite_of(req).is_some_and(|invite| self.ist.contains_key(&invite)))
    }

    /// Sends a message that belongs to no transaction (the ACK of a 2xx, a 2xx the
    /// dialog retransmits, a stateless reply), in order with the transactions' own.
    pub fn send_direct(&mut self, flow: Flow, bytes: Vec<u8>) {
        self.transmits.push_back((flow, bytes));
    }

    /// The next datagram (or stream message) to send.
    pub fn poll_transmit(&mut self) -> Option<(Flow, Vec<u8>)> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Runs every timer due at `now`: retransmissions (A, E, G), timeouts (B, F, H) and
    /// the ends of completed transactions (D, I, J, K, L, M).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, target))) = self.timers.pop() else {
                break;
            };
            match target {
                TimerRef::Ist(id) => self.ist_timer(now, id),
                TimerRef::Nist(id) => self.nist_timer(now, id),
                TimerRef::Ict(id) => self.ict_timer(now, id),
                TimerRef::Nict(id) => self.nict_timer(now, id),
            }
        }
        // Completed transactions leave here (Timers D, H, I, J, K, after 32 s at most), so
        // this is where the tables of a load peak get their memory back.
        self.ist.give_back();
        self.nist.give_back();
        self.ict.give_back();
        self.nict.give_back();
        self.timers.give_back();
        // Not `transmits` or `events`: transient queues, drained after every input;
        // shrinking them would only reallocate them at the next burst.
    }

    fn transmit(&mut self, flow: Flow, bytes: Vec<u8>) {
        self.transmits.push_back((flow, bytes));
    }

    fn arm(&mut self, at: Instant, timer: TimerRef) {
        self.timers.push(Reverse((at, timer)));
    }

    /// 64·T1: Timers B, F, H, J, L and M.
    fn timeout_64t1(&self) -> Duration {
        self.cfg.timers.t1 * 64
    }
}

#[cfg(test)]
mod tests;
