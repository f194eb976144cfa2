//! Where a SIP message comes from or goes to: the one piece of vocabulary every layer
//! shares (the transaction layer sends on it, dialogs remember it, the trunk names its
//! own), kept at the bottom so that none of them has to look up at another for it.

use std::net::SocketAddr;

/// Where a message came from / goes to. TCP keeps the connection so that responses and
/// in-dialog requests reuse it (peers behind NAT or proxies expect that).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flow {
    Udp(SocketAddr),
    Tcp { conn: u64, remote: SocketAddr },
}

/// `conn` of a [`Flow::Tcp`] that means "the driver's own client connection to
/// `remote`, opened on first use and reopened after a loss" (outbound calls, the
/// trunk). Accepted connections are numbered from 1.
pub const OUTBOUND_CONN: u64 = 0;

impl Flow {
    /// A TCP flow to `remote` over our own (client) connection.
    pub fn tcp_to(remote: SocketAddr) -> Flow {
        Flow::Tcp {
            conn: OUTBOUND_CONN,
            remote,
        }
    }

    pub fn remote(&self) -> SocketAddr {
        match self {
            Flow::Udp(a) => *a,
            Flow::Tcp { remote, .. } => *remote,
        }
    }

    /// Reliable transports need no retransmissions (RFC 3261 §17: Timers E, G off;
    /// I, J, K zero).
    pub fn reliable(&self) -> bool {
        matches!(self, Flow::Tcp { .. })
    }

    /// The transport token of a Via header sent on this flow.
    pub fn via_transport(&self) -> &'static str {
        match self {
            Flow::Udp(_) => "UDP",
            Flow::Tcp { .. } => "TCP",
        }
    }
}
