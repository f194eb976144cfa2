//! The SIP socket edge under tokio: one UDP socket and one TCP listener on the same
//! port, and one task (the *driver*) that owns the sans-IO [`Endpoint`].
//!
//! A single driver task serialises all SIP processing: transactions and dialogs need no
//! locks, and at the target load (hundreds of calls per second) one core's share of SIP
//! parsing is far from the bottleneck; media runs elsewhere.
//!
//! Outbound: [`SipHandle::dial`] places a call (events on the channel it is given);
//! [`SipHandle::trunk_state`] watches the trunk. Over TCP the driver opens one client
//! connection per remote address (the trunk) on first use ([`Flow::tcp_to`]), reuses it
//! for every request and reads responses and in-dialog requests from it like from an
//! accepted one; a failed or lost connection is reported to the endpoint (pending
//! transactions fail at once, the trunk re-registers) and the next send reconnects.
//!
//! The trunk's state comes out of the endpoint in monotonic time; the driver publishes
//! it on the wall clock read from the service's injected clock ([`SharedClock`]), so a
//! test's clock is what the API and the dialer see. The driver's own timers stay on
//! tokio's, like every timer that waits.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use tongdai_capacity::GiveBack;

use crate::clock::SharedClock;
use tongdai_sip::endpoint::{
    AccessConfig, Command, DialError, DialRequest, Dialed, Endpoint, EndpointConfig, Flow,
    IncomingCall, LegEvent, LegId, OUTBOUND_CONN, Output,
};
use tongdai_sip::framing::{FramingError, StreamFramer};
use tongdai_sip::trunk::TrunkState;

/// Largest SIP message accepted on a TCP stream.
const MAX_STREAM_MESSAGE: usize = 64 * 1024;
/// Concurrent TCP connections; more are accepted and closed at once.
const MAX_TCP_CONNECTIONS: usize = 4096;
/// How long a TCP connect to the trunk may take before it counts as a transport error.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often an unresolvable trunk host is looked up again.
const RESOLVE_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// Connection ids, shared by accepted and outbound connections (0 is [`OUTBOUND_CONN`]).
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Decides, inside the driver task, what happens to a new inbound call: `Ok(events)` is
/// where the leg's events go; `Err(status)` rejects it (404 unknown number, 488 …).
pub type Router =
    Box<dyn FnMut(&IncomingCall) -> Result<mpsc::UnboundedSender<LegEvent>, u16> + Send>;

/// Messages into the driver.
pub enum DriverMsg {
    Command(Command),
    Dial {
        request: DialRequest,
        events: mpsc::UnboundedSender<LegEvent>,
        reply: oneshot::Sender<Result<Dialed, DialError>>,
    },
    /// The trunk host resolved (from the resolver task).
    TrunkResolved(SocketAddr),
    /// Shutdown: remove the REGISTER binding; the reply says whether one is on its way.
    Unregister(oneshot::Sender<bool>),
    SetDraining(bool),
    /// How many legs and transactions are alive (tests, shutdown, health).
    Census(oneshot::Sender<Census>),
    Stop,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    pub legs: usize,
    pub transactions: usize,
    pub tcp_connections: usize,
}

/// The rest of the service's handle on the SIP driver.
#[derive(Clone)]
pub struct SipHandle {
    tx: mpsc::UnboundedSender<DriverMsg>,
    pub local_addr: SocketAddr,
    trunk: watch::Receiver<TrunkState>,
}

impl SipHandle {
    /// Places an outbound call. On `Ok` the INVITE is on its way and every event of the
    /// leg goes to `events`: `Progress`*, then `Answered` or `Failed` (the last event of
    /// an unanswered leg); after `Answered` the inbound-leg events (`Info`, `Reoffer`,
    /// `Terminated`, `ByeCompleted` …). Control it with `Command::Cancel`/`Hangup`
    /// through [`SipHandle::command`]. `Err` means nothing was sent and no event follows.
    pub async fn dial(
        &self,
        request: DialRequest,
        events: mpsc::UnboundedSender<LegEvent>,
    ) -> Result<Dialed, DialError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(DriverMsg::Dial {
                request,
                events,
                reply,
            })
            .map_err(|_| DialError::Draining)?;
        rx.await.map_err(|_| DialError::Draining)?
    }

    /// Shutdown: sends REGISTER with Expires: 0 (if registered) and stops the keepalive;
    /// then waits, at most `wait`, until the trunk state shows no binding.
    pub async fn unregister(&self, wait: std::time::Duration) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(DriverMsg::Unregister(reply)).is_err() {
            return;
        }
        if rx.await.unwrap_or(false) {
            let mut state = self.trunk.clone();
            let _ = tokio::time::timeout(wait, state.wait_for(|s| !s.registered)).await;
        }
    }

    /// The trunk's state (registered, reachable, last error, next refresh …), updated on
    /// every change. `configured` is false without a `[trunk]`.
    pub fn trunk_state(&self) -> watch::Receiver<TrunkState> {
        self.trunk.clone()
    }

    pub fn command(&self, cmd: Command) {
        // The driver outlives every call task; a send error means we are shutting down.
        let _ = self.tx.send(DriverMsg::Command(cmd));
    }
    pub fn set_draining(&self, draining: bool) {
        let _ = self.tx.send(DriverMsg::SetDraining(draining));
    }
    pub async fn census(&self) -> Option<Census> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(DriverMsg::Census(tx)).ok()?;
        rx.await.ok()
    }
    pub fn stop(&self) {
        let _ = self.tx.send(DriverMsg::Stop);
    }
}

enum TcpEvent {
    Opened {
        conn: u64,
        writer: mpsc::UnboundedSender<Vec<u8>>,
    },
    /// An outbound connect failed or timed out.
    ConnectFailed {
        conn: u64,
    },
    Message {
        conn: u64,
        remote: SocketAddr,
        bytes: Vec<u8>,
    },
    Closed {
        conn: u64,
    },
}

/// Binds UDP and TCP on the same address (port 0: the UDP port is reused for TCP).
/// With port 0 the kernel's UDP choice may be taken for TCP (by any TCP socket on the
/// machine, outbound connections included), so a few ports are tried.
pub async fn bind(listen: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let attempts = if listen.port() == 0 { 32 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(listen).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(listen.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
}

/// Starts the driver and the TCP accept loop for an inbound-only endpoint (no ACL, no
/// trunk). They run until [`SipHandle::stop`]. `clock` stamps the published trunk state.
pub fn spawn(
    cfg: EndpointConfig,
    udp: UdpSocket,
    tcp: TcpListener,
    router: Router,
    clock: SharedClock,
) -> io::Result<(SipHandle, tokio::task::JoinHandle<()>)> {
    spawn_with(cfg, AccessConfig::default(), udp, tcp, router, clock)
}

/// Like [`spawn`], with the source ACL and the trunk (registration and keepalive start
/// as soon as the trunk's host resolves; an IP literal resolves at once).
pub fn spawn_with(
    cfg: EndpointConfig,
    access: AccessConfig,
    udp: UdpSocket,
    tcp: TcpListener,
    router: Router,
    clock: SharedClock,
) -> io::Result<(SipHandle, tokio::task::JoinHandle<()>)> {
    let local_addr = udp.local_addr()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (tcp_tx, tcp_rx) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    tokio::spawn(accept_loop(tcp, tcp_tx.clone(), stop.clone()));
    let trunk_cfg = access.trunk.clone();
    let mut endpoint = Endpoint::with_access(cfg, access);
    // An IP-literal trunk is usable at once (no race between spawn and the first dial);
    // a host name is resolved by a task.
    let literal = trunk_cfg
        .as_ref()
        .and_then(|t| Some(SocketAddr::new(t.host.parse().ok()?, t.port)));
    if let Some(addr) = literal {
        endpoint.set_trunk_addr(now(), addr);
    }
    let at = now();
    let initial = endpoint
        .trunk_state(at)
        .on_wall_clock(at, wall_clock(&clock));
    let (trunk_tx, trunk_rx) = watch::channel(initial);
    if let Some(trunk) = trunk_cfg.as_ref().filter(|_| literal.is_none()) {
        tokio::spawn(resolve_trunk(
            trunk.host.clone(),
            trunk.port,
            tx.clone(),
            stop.clone(),
        ));
    }
    let driver = Driver {
        endpoint,
        udp: Arc::new(udp),
        tcp_writers: HashMap::new(),
        outbound: HashMap::new(),
        tcp_events: tcp_tx,
        stop: stop.clone(),
        routes: HashMap::new(),
        router,
        clock,
        trunk_tx,
    };
    let join = tokio::spawn(driver.run(rx, tcp_rx, stop));
    Ok((
        SipHandle {
            tx,
            local_addr,
            trunk: trunk_rx,
        },
        join,
    ))
}

/// Resolves the trunk host (an IP literal at once), retrying until it works.
async fn resolve_trunk(
    host: String,
    port: u16,
    tx: mpsc::UnboundedSender<DriverMsg>,
    stop: CancellationToken,
) {
    loop {
        match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(mut addrs) => {
                if let Some(addr) = addrs.next() {
                    let _ = tx.send(DriverMsg::TrunkResolved(addr));
                    return;
                }
                tracing::warn!(%host, "trunk host resolved to no address");
            }
            Err(e) => tracing::warn!(%host, error = %e, "cannot resolve the trunk host"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RESOLVE_RETRY) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Our client connection to one remote (the trunk).
struct OutboundConn {
    conn: u64,
    /// `None` while connecting; messages wait in `queue`.
    writer: Option<mpsc::UnboundedSender<Vec<u8>>>,
    queue: Vec<Vec<u8>>,
}

struct Driver {
    endpoint: Endpoint,
    udp: Arc<UdpSocket>,
    tcp_writers: HashMap<u64, mpsc::UnboundedSender<Vec<u8>>>,
    /// Client connections by remote address (what [`Flow::tcp_to`] means).
    outbound: HashMap<SocketAddr, OutboundConn>,
    tcp_events: mpsc::UnboundedSender<TcpEvent>,
    stop: CancellationToken,
    routes: HashMap<LegId, mpsc::UnboundedSender<LegEvent>>,
    router: Router,
    /// Where the published trunk state's wall-clock moments come from.
    clock: SharedClock,
    trunk_tx: watch::Sender<TrunkState>,
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// The injected clock's wall reading as a `SystemTime`. jiff's range is inside
/// `SystemTime`'s on every platform we run on; the epoch stands in if it ever was not.
fn wall_clock(clock: &SharedClock) -> SystemTime {
    SystemTime::try_from(clock.now()).unwrap_or(SystemTime::UNIX_EPOCH)
}

impl Driver {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<DriverMsg>,
        mut tcp_rx: mpsc::UnboundedReceiver<TcpEvent>,
        stop: CancellationToken,
    ) {
        let mut buf = vec![0u8; 65_536];
        let udp = self.udp.clone();
        // Whatever the endpoint queued before the loop (the first REGISTER/OPTIONS).
        self.flush().await;
        loop {
            let deadline = self.endpoint.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = udp.recv_from(&mut buf) => match received {
                    Ok((n, from)) => {
                        let bytes = buf.get(..n).unwrap_or_default();
                        self.endpoint.handle_bytes(now(), Flow::Udp(from), bytes);
                    }
                    // ICMP port unreachable from an earlier send shows up here on Linux;
                    // it concerns one peer, never the socket.
                    Err(e) => tracing::debug!(error = %e, "udp receive error"),
                },
                Some(event) = tcp_rx.recv() => self.tcp_event(event),
                msg = rx.recv() => match msg {
                    Some(DriverMsg::Command(cmd)) => self.endpoint.handle_command(now(), cmd),
                    Some(DriverMsg::Dial { request, events, reply }) => {
                        let result = self.endpoint.dial(now(), request);
                        if let Ok(dialed) = &result {
                            self.routes.insert(dialed.leg, events);
                        }
                        let _ = reply.send(result);
                    }
                    Some(DriverMsg::Unregister(reply)) => {
                        let _ = reply.send(self.endpoint.unregister(now()));
                    }
                    Some(DriverMsg::TrunkResolved(addr)) => {
                        tracing::info!(%addr, "trunk address");
                        self.endpoint.set_trunk_addr(now(), addr);
                    }
                    Some(DriverMsg::SetDraining(d)) => self.endpoint.set_draining(d),
                    Some(DriverMsg::Census(reply)) => {
                        let _ = reply.send(Census {
                            legs: self.endpoint.active_legs(),
                            transactions: self.endpoint.transactions(),
                            tcp_connections: self.tcp_writers.len(),
                        });
                    }
                    Some(DriverMsg::Stop) | None => break,
                },
                _ = sleep => self.endpoint.handle_timeout(now()),
            }
            self.flush().await;
        }
        stop.cancel();
    }

    fn tcp_event(&mut self, event: TcpEvent) {
        match event {
            TcpEvent::Opened { conn, writer } => {
                if let Some(out) = self.outbound.values_mut().find(|o| o.conn == conn) {
                    for bytes in out.queue.drain(..) {
                        let _ = writer.send(bytes);
                    }
                    out.writer = Some(writer.clone());
                }
                self.tcp_writers.insert(conn, writer);
            }
            TcpEvent::ConnectFailed { conn } => self.outbound_lost(conn),
            TcpEvent::Message {
                conn,
                remote,
                bytes,
            } => {
                self.endpoint
                    .handle_bytes(now(), Flow::Tcp { conn, remote }, &bytes);
            }
            TcpEvent::Closed { conn } => {
                self.tcp_writers.remove(&conn);
                self.tcp_writers.give_back();
                self.outbound_lost(conn);
            }
        }
    }

    /// An outbound connection failed to open or closed: forget it (the next send
    /// reconnects) and fail what was waiting on it.
    fn outbound_lost(&mut self, conn: u64) {
        let Some(remote) = self
            .outbound
            .iter()
            .find(|(_, o)| o.conn == conn)
            .map(|(r, _)| *r)
        else {
            return;
        };
        self.outbound.remove(&remote);
        tracing::info!(%remote, "outbound SIP TCP connection lost");
        self.endpoint.handle_transport_error(now(), remote);
    }

    /// Sends over our client connection to `remote`, connecting first if needed.
    fn send_outbound(&mut self, remote: SocketAddr, bytes: Vec<u8>) {
        if let Some(out) = self.outbound.get_mut(&remote) {
            match &out.writer {
                Some(w) => {
                    if w.send(bytes).is_err() {
                        tracing::debug!(%remote, "outbound connection closing; message dropped");
                    }
                }
                None => out.queue.push(bytes),
            }
            return;
        }
        let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        self.outbound.insert(
            remote,
            OutboundConn {
                conn,
                writer: None,
                queue: vec![bytes],
            },
        );
        let events = self.tcp_events.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote)).await {
                Ok(Ok(stream)) => connection(stream, conn, remote, events, stop).await,
                Ok(Err(e)) => {
                    tracing::warn!(%remote, error = %e, "SIP TCP connect failed");
                    let _ = events.send(TcpEvent::ConnectFailed { conn });
                }
                Err(_) => {
                    tracing::warn!(%remote, "SIP TCP connect timed out");
                    let _ = events.send(TcpEvent::ConnectFailed { conn });
                }
            }
        });
    }

    async fn flush(&mut self) {
        while let Some(output) = self.endpoint.poll_output() {
            match output {
                Output::Transmit { flow, bytes } => match flow {
                    Flow::Udp(to) => {
                        if let Err(e) = self.udp.send_to(&bytes, to).await {
                            tracing::debug!(error = %e, %to, "udp send failed");
                        }
                    }
                    Flow::Tcp {
                        conn: OUTBOUND_CONN,
                        remote,
                    } => self.send_outbound(remote, bytes),
                    Flow::Tcp { conn, remote } => match self.tcp_writers.get(&conn) {
                        Some(w) => {
                            let _ = w.send(bytes);
                        }
                        None => tracing::debug!(%remote, "tcp connection gone; message dropped"),
                    },
                },
                Output::Event(event) => self.route(event),
                Output::Trunk(state) => {
                    let at = now();
                    let state = state.on_wall_clock(at, wall_clock(&self.clock));
                    self.trunk_tx.send_replace(state);
                }
            }
        }
    }

    fn route(&mut self, event: LegEvent) {
        match event {
            LegEvent::Incoming(call) => match (self.router)(&call) {
                Ok(events) => {
                    let leg = call.leg;
                    if events.send(LegEvent::Incoming(call)).is_ok() {
                        self.routes.insert(leg, events);
                    }
                }
                Err(status) => self.endpoint.handle_command(
                    now(),
                    Command::Reject {
                        leg: call.leg,
                        status,
                    },
                ),
            },
            other => {
                let (leg, last) = match &other {
                    LegEvent::Terminated { leg, .. }
                    | LegEvent::ByeCompleted { leg, .. }
                    | LegEvent::Failed { leg, .. } => (*leg, true),
                    LegEvent::Progress { leg, .. } | LegEvent::Answered { leg, .. } => {
                        (*leg, false)
                    }
                    LegEvent::ReferAnswered { leg, .. }
                    | LegEvent::TransferProgress { leg, .. }
                    | LegEvent::Confirmed { leg }
                    | LegEvent::Reoffer { leg, .. }
                    | LegEvent::Info { leg, .. } => (*leg, false),
                    LegEvent::Incoming(_) => return,
                };
                if let Some(route) = self.routes.get(&leg) {
                    let _ = route.send(other);
                }
                if last {
                    self.routes.remove(&leg);
                    self.routes.give_back();
                }
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    events: mpsc::UnboundedSender<TcpEvent>,
    stop: CancellationToken,
) {
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off a little instead of spinning.
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::warn!(%remote, "too many SIP TCP connections; closing");
            continue;
        };
        let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        let events = events.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            connection(stream, conn, remote, events, stop).await;
            drop(permit);
        });
    }
}

async fn connection(
    stream: TcpStream,
    conn: u64,
    remote: SocketAddr,
    events: mpsc::UnboundedSender<TcpEvent>,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (wtx, mut wrx) = mpsc::unbounded_channel::<Vec<u8>>();
    if events
        .send(TcpEvent::Opened {
            conn,
            writer: wtx.clone(),
        })
        .is_err()
    {
        return;
    }
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = wrx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut framer = StreamFramer::new(MAX_STREAM_MESSAGE);
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let n = tokio::select! {
            r = reader.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = stop.cancelled() => break,
        };
        framer.push(buf.get(..n).unwrap_or_default());
        // RFC 5626 §4.4.1: each CRLFCRLF ping gets a CRLF pong.
        for _ in 0..framer.take_pings() {
            let _ = wtx.send(b"\r\n".to_vec());
        }
        loop {
            match framer.next_message() {
                Ok(Some(bytes)) => {
                    if events
                        .send(TcpEvent::Message {
                            conn,
                            remote,
                            bytes,
                        })
                        .is_err()
                    {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // A stream we cannot frame cannot be resynchronised: answer if we
                    // can, then close it (RFC 3261 §18.3).
                    tracing::debug!(error = %e, %remote, "closing SIP TCP connection");
                    let reply = match e {
                        FramingError::MissingContentLength { reply }
                        | FramingError::BadContentLength { reply } => reply,
                        _ => None,
                    };
                    if let Some(reply) = reply {
                        let _ = wtx.send(reply);
                    }
                    break 'read;
                }
            }
        }
    }
    drop(wtx);
    let _ = events.send(TcpEvent::Closed { conn });
    let _ = write_task.await;
}
