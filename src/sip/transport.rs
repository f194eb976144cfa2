//! The SIP socket edge under tokio: one UDP socket and one TCP listener on the same
//! port, and one task (the *driver*) that owns the sans-IO [`Endpoint`].
//!
//! A single driver task serialises all SIP processing: transactions and dialogs need no
//! locks, and at the target load (hundreds of calls per second) one core's share of SIP
//! parsing is far from the bottleneck; media runs elsewhere.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::endpoint::{
    Command, Endpoint, EndpointConfig, Flow, IncomingCall, LegEvent, LegId, Output,
};
use super::framing::{FramingError, StreamFramer};

/// Largest SIP message accepted on a TCP stream.
const MAX_STREAM_MESSAGE: usize = 64 * 1024;
/// Concurrent TCP connections; more are accepted and closed at once.
const MAX_TCP_CONNECTIONS: usize = 4096;

/// Decides, inside the driver task, what happens to a new inbound call: `Ok(events)` is
/// where the leg's events go; `Err(status)` rejects it (404 unknown number, 488 …).
pub type Router =
    Box<dyn FnMut(&IncomingCall) -> Result<mpsc::UnboundedSender<LegEvent>, u16> + Send>;

/// Messages into the driver.
pub enum DriverMsg {
    Command(Command),
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
}

impl SipHandle {
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
pub async fn bind(listen: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let udp = UdpSocket::bind(listen).await?;
    let port = udp.local_addr()?.port();
    let tcp = TcpListener::bind(SocketAddr::new(listen.ip(), port)).await?;
    Ok((udp, tcp))
}

/// Starts the driver and the TCP accept loop. They run until [`SipHandle::stop`].
pub fn spawn(
    cfg: EndpointConfig,
    udp: UdpSocket,
    tcp: TcpListener,
    router: Router,
) -> io::Result<(SipHandle, tokio::task::JoinHandle<()>)> {
    let local_addr = udp.local_addr()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (tcp_tx, tcp_rx) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    tokio::spawn(accept_loop(tcp, tcp_tx, stop.clone()));
    let driver = Driver {
        endpoint: Endpoint::new(cfg),
        udp: Arc::new(udp),
        tcp_writers: HashMap::new(),
        routes: HashMap::new(),
        router,
    };
    let join = tokio::spawn(driver.run(rx, tcp_rx, stop));
    Ok((SipHandle { tx, local_addr }, join))
}

struct Driver {
    endpoint: Endpoint,
    udp: Arc<UdpSocket>,
    tcp_writers: HashMap<u64, mpsc::UnboundedSender<Vec<u8>>>,
    routes: HashMap<LegId, mpsc::UnboundedSender<LegEvent>>,
    router: Router,
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
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
                self.tcp_writers.insert(conn, writer);
            }
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
            }
        }
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
                    Flow::Tcp { conn, remote } => match self.tcp_writers.get(&conn) {
                        Some(w) => {
                            let _ = w.send(bytes);
                        }
                        None => tracing::debug!(%remote, "tcp connection gone; message dropped"),
                    },
                },
                Output::Event(event) => self.route(event),
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
                    LegEvent::Terminated { leg, .. } | LegEvent::ByeCompleted { leg, .. } => {
                        (*leg, true)
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
    static NEXT_CONN: AtomicU64 = AtomicU64::new(1);
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
