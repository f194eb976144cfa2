//! RTP port allocation from `rtp.port_min..=rtp.port_max`.
//!
//! Even ports only (RFC 3550 §11: RTP on even, RTCP on the next odd). The kernel is the
//! source of truth for what is free: we bind, and on EADDRINUSE try the next port, so two
//! processes sharing one range cannot hand out the same port.
//!
//! One port per call: the port in our SDP identifies the call, which is what lets
//! symmetric RTP follow a caller behind NAT (see `media::worker`). The socket is a plain
//! non-blocking std socket: the call hands it to a media worker at answer time, which
//! registers it in its own epoll (no tokio registration per call).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("no free RTP port in {min}-{max}")]
    Exhausted { min: u16, max: u16 },
}

/// A bound, non-blocking RTP socket; the port is free again when the socket is closed.
#[derive(Debug)]
pub struct RtpPort {
    socket: UdpSocket,
    port: u16,
}

impl RtpPort {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The socket, for the media worker that will own it.
    pub fn into_socket(self) -> UdpSocket {
        self.socket
    }
}

pub struct RtpPorts {
    ip: IpAddr,
    min: u16,
    max: u16,
    /// Round-robin cursor, so a just-released port is not reused at once (late packets
    /// of the old call would land in the new one).
    cursor: AtomicU32,
}

impl RtpPorts {
    pub fn new(ip: IpAddr, min: u16, max: u16) -> Self {
        let min = min + (min % 2);
        RtpPorts {
            ip,
            min,
            max,
            cursor: AtomicU32::new(0),
        }
    }

    fn slots(&self) -> u32 {
        (u32::from(self.max.saturating_sub(self.min)) / 2) + 1
    }

    pub fn allocate(&self) -> Result<RtpPort, PortError> {
        let slots = self.slots();
        for _ in 0..slots {
            let slot = self.cursor.fetch_add(1, Ordering::Relaxed) % slots;
            let Ok(port) = u16::try_from(u32::from(self.min) + slot * 2) else {
                continue;
            };
            if port > self.max {
                continue;
            }
            let Ok(socket) = UdpSocket::bind(SocketAddr::new(self.ip, port)) else {
                continue;
            };
            if socket.set_nonblocking(true).is_ok() {
                return Ok(RtpPort { socket, port });
            }
        }
        Err(PortError::Exhausted {
            min: self.min,
            max: self.max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_even_ports_and_reports_exhaustion() {
        let ports = RtpPorts::new("127.0.0.1".parse().unwrap(), 41001, 41006);
        let a = ports.allocate().unwrap();
        let b = ports.allocate().unwrap();
        assert!(a.port().is_multiple_of(2) && b.port().is_multiple_of(2));
        assert_ne!(a.port(), b.port());
        let c = ports.allocate().unwrap();
        // 41002, 41004, 41006 taken: the range is exhausted.
        let err = ports.allocate().err().unwrap();
        assert!(err.to_string().contains("41002-41006"), "{err}");
        drop(c);
        assert!(ports.allocate().is_ok(), "a released port is reusable");
    }
}
