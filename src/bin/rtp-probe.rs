//! Benchmark RTP receiver: binds one UDP port, receives every call's RTP, and prints a
//! JSON summary of what arrived (per-SSRC send-interval distribution, packets/s against
//! the expected 50 per call, sequence gaps, kernel drops). Stops after `--duration`,
//! after `--idle` without packets (once some arrived), or on Ctrl-C (SIGINT).
//!
//!     rtp-probe --port 40000 [--duration 60s] [--idle 5s] [--out summary.json]
//!               [--dtmf-after 15s]
//!
//! With `--dtmf-after`, each stream is sent RFC 4733 digit `1` (PT 101, from the probe's
//! port to the port the stream comes from: symmetric RTP) that long after its first
//! packet, and the time from our first End packet to the first marker-bit packet of that
//! SSRC (the next prompt's first packet) is the digit→prompt latency.
//!
//! Send intervals are measured with the kernel's receive timestamps (`SO_TIMESTAMPNS`): on
//! loopback the packet is queued to our socket inside the service's `sendto` (the
//! softirq runs in the sender's context), so the timestamp is the send time and the
//! interval of consecutive sequence numbers is the service's pacing — whether or not the
//! probe itself got the CPU in time. The probe's own read time is reported too
//! (`arrival_interval_*`): the difference between the two is the probe's scheduling, not
//! the service's. `kernel_drops` are packets the probe's own socket dropped (then the
//! probe, not the service, was short of CPU); `seq_gaps` minus those were never sent (the
//! service skips frames it is more than 3 late for).
//! Bench tool only: not part of the service.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

struct Stream {
    first: Instant,
    last: Instant,
    /// Kernel receive timestamp of the last packet (`SystemTime` clock).
    last_kernel: SystemTime,
    last_seq: u16,
    packets: u64,
    seq_gaps: u64,
    /// Send intervals (kernel timestamps of consecutive packets), microseconds.
    gaps_us: Vec<u32>,
    /// Inter-arrival as the probe read them, microseconds.
    arrival_gaps_us: Vec<u32>,
    /// When we sent this call a DTMF digit (the first End packet), if we did.
    digit_sent: Option<SystemTime>,
    /// First marker-bit packet after the digit: the next prompt's first packet.
    reaction: Option<Duration>,
}

/// RFC 4733 digit `1` (event 1) back to the service's RTP port: one start packet and three
/// End packets (as phones send them), payload type 101 as the bench offer maps it.
fn send_digit(sock: &UdpSocket, to: std::net::SocketAddr, ssrc: u32) -> std::io::Result<()> {
    let ts: u32 = 0x1000;
    let mut pkt = [0u8; 16];
    pkt[0] = 0x80;
    pkt[4..8].copy_from_slice(&ts.to_be_bytes());
    pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
    pkt[12] = 1; // event "1"
    for (i, (end, duration)) in [(false, 160u16), (true, 800), (true, 800), (true, 800)]
        .into_iter()
        .enumerate()
    {
        pkt[1] = if i == 0 { 0x80 | 101 } else { 101 };
        pkt[2..4].copy_from_slice(&(i as u16 + 1).to_be_bytes());
        pkt[13] = if end { 0x80 | 10 } else { 10 };
        pkt[14..16].copy_from_slice(&duration.to_be_bytes());
        sock.send_to(&pkt, to)?;
    }
    Ok(())
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn dur(s: Option<String>, default: Duration) -> Duration {
    s.and_then(|s| humantime::parse_duration(&s).ok())
        .unwrap_or(default)
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

/// Kernel drop counter of our socket from /proc/net/udp (last column), if found.
fn kernel_drops(port: u16) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/udp").ok()?;
    let needle = format!(":{port:04X}");
    text.lines().skip(1).find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if cols.get(1)?.ends_with(&needle) {
            cols.last()?.parse().ok()
        } else {
            None
        }
    })
}

fn set_int_option(sock: &UdpSocket, name: i32, value: i32) -> bool {
    let len = std::mem::size_of::<i32>() as libc::socklen_t;
    let value = (&raw const value).cast::<libc::c_void>();
    // SAFETY: the fd is a valid open socket owned by `sock`; value points to a live i32
    // of `len` bytes.
    unsafe { libc::setsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, name, value, len) == 0 }
}

/// A big receive buffer, so that the probe losing the CPU for a few ms on a busy 2-core box
/// does not drop packets in its own socket (SO_RCVBUFFORCE needs CAP_NET_ADMIN, SO_RCVBUF
/// is capped by net.core.rmem_max).
fn grow_receive_buffer(sock: &UdpSocket, bytes: i32) {
    if !set_int_option(sock, libc::SO_RCVBUFFORCE, bytes) {
        set_int_option(sock, libc::SO_RCVBUF, bytes);
    }
}

/// `recvmsg` with the kernel's receive timestamp (`SO_TIMESTAMPNS` must be on). IPv4 only
/// (the probe binds 127.0.0.1). `WouldBlock`/`TimedOut` after the read timeout.
fn recv_timestamped(
    sock: &UdpSocket,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr, Option<SystemTime>)> {
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64 elements: cmsg headers need 8-byte alignment.
    let mut control = [0u64; 16];
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&raw mut addr).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg points to a valid iovec (our buffer), address and control buffers,
    // all alive for the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &raw mut msg, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the kernel filled `control` up to msg_controllen; CMSG_* walk it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                stamp = Some(
                    SystemTime::UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
                );
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    let from = SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
        u16::from_be(addr.sin_port),
    ));
    Ok((n as usize, from, stamp))
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u128::from(u32::MAX)) as u32
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, "--port").unwrap_or("40000".into()).parse()?;
    let duration = dur(arg(&args, "--duration"), Duration::from_secs(3600));
    let idle = dur(arg(&args, "--idle"), Duration::from_secs(5));
    let out = arg(&args, "--out");
    // Digit→prompt mode: this long after a stream's first packet, send it digit 1 and
    // time the first marker-bit packet that follows (the next prompt starting).
    let dtmf_after = arg(&args, "--dtmf-after").and_then(|s| humantime::parse_duration(&s).ok());

    let sock = UdpSocket::bind(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    grow_receive_buffer(&sock, 64 << 20);
    if !set_int_option(&sock, libc::SO_TIMESTAMPNS, 1) {
        anyhow::bail!("SO_TIMESTAMPNS not supported");
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                let _ = rt.block_on(tokio::signal::ctrl_c());
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
    eprintln!("rtp-probe listening on 127.0.0.1:{port}");

    let start = Instant::now();
    let mut streams: HashMap<u32, Stream> = HashMap::new();
    let mut per_second: Vec<u64> = Vec::new();
    let mut last_packet: Option<Instant> = None;
    let mut buf = [0u8; 2048];
    let mut non_rtp = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) || start.elapsed() >= duration {
            break;
        }
        if let Some(t) = last_packet
            && t.elapsed() >= idle
        {
            break;
        }
        let (n, from, stamp) = match recv_timestamped(&sock, &mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let now = Instant::now();
        // The kernel's timestamp (≈ the service's send time on loopback); our clock if
        // the kernel gave none.
        let kernel = stamp.unwrap_or_else(SystemTime::now);
        last_packet = Some(now);
        if n < 12 || buf[0] >> 6 != 2 {
            non_rtp += 1;
            continue;
        }
        let sec = (now - start).as_secs() as usize;
        if per_second.len() <= sec {
            per_second.resize(sec + 1, 0);
        }
        per_second[sec] += 1;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let marker = buf[1] & 0x80 != 0;
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        match streams.get_mut(&ssrc) {
            Some(s) => {
                let expected = s.last_seq.wrapping_add(1);
                // Only consecutive packets measure a send interval; a gap in the
                // sequence (loss, or the service skipping late frames) is counted apart.
                if seq == expected {
                    s.gaps_us.push(micros(
                        kernel.duration_since(s.last_kernel).unwrap_or_default(),
                    ));
                    s.arrival_gaps_us.push(micros(now - s.last));
                } else {
                    s.seq_gaps += u64::from(seq.wrapping_sub(expected).min(1000));
                }
                s.last = now;
                s.last_kernel = kernel;
                s.last_seq = seq;
                s.packets += 1;
                if let Some(sent) = s.digit_sent {
                    if marker && s.reaction.is_none() {
                        s.reaction = Some(kernel.duration_since(sent).unwrap_or_default());
                    }
                } else if let Some(after) = dtmf_after
                    && now - s.first >= after
                {
                    send_digit(&sock, from, ssrc ^ 0x5a5a_5a5a)?;
                    s.digit_sent = Some(SystemTime::now());
                }
            }
            None => {
                streams.insert(
                    ssrc,
                    Stream {
                        first: now,
                        last: now,
                        last_kernel: kernel,
                        last_seq: seq,
                        packets: 1,
                        seq_gaps: 0,
                        gaps_us: Vec::with_capacity(1600),
                        arrival_gaps_us: Vec::with_capacity(1600),
                        digit_sent: None,
                        reaction: None,
                    },
                );
            }
        }
    }

    // Summary.
    let mut all: Vec<u32> = streams
        .values()
        .flat_map(|s| s.gaps_us.iter().copied())
        .collect();
    all.sort_unstable();
    let within = all
        .iter()
        .filter(|&&g| (18_000..=22_000).contains(&g))
        .count();
    let mut arrival: Vec<u32> = streams
        .values()
        .flat_map(|s| s.arrival_gaps_us.iter().copied())
        .collect();
    arrival.sort_unstable();
    let arrival_within = arrival
        .iter()
        .filter(|&&g| (18_000..=22_000).contains(&g))
        .count();
    let packets: u64 = streams.values().map(|s| s.packets).sum();
    let mut rates: Vec<f64> = streams
        .values()
        .filter(|s| s.packets > 50)
        .map(|s| (s.packets - 1) as f64 / (s.last - s.first).as_secs_f64())
        .collect();
    rates.sort_by(|a, b| a.total_cmp(b));
    let seq_gaps: u64 = streams.values().map(|s| s.seq_gaps).sum();
    // Streams active in each second (first..=last arrival).
    let mut active = vec![0u64; per_second.len()];
    for s in streams.values() {
        let a = (s.first - start).as_secs() as usize;
        let b = ((s.last - start).as_secs() as usize).min(active.len().saturating_sub(1));
        for slot in active.iter_mut().take(b + 1).skip(a) {
            *slot += 1;
        }
    }
    let peak_streams = active.iter().copied().max().unwrap_or(0);
    // Steady state: the seconds with the peak number of streams, minus the edge seconds.
    let full: Vec<usize> = (0..per_second.len())
        .filter(|&i| peak_streams > 0 && active[i] == peak_streams)
        .collect();
    let inner: &[usize] = if full.len() > 2 {
        &full[1..full.len() - 1]
    } else {
        &full
    };
    let recv_pps = if inner.is_empty() {
        0.0
    } else {
        inner.iter().map(|&i| per_second[i] as f64).sum::<f64>() / inner.len() as f64
    };
    let share = |n: usize, of: usize| {
        if of == 0 {
            0.0
        } else {
            (n as f64 * 10000.0 / of as f64).round() / 100.0
        }
    };
    let within_pct = share(within, all.len());
    let mut reactions: Vec<u32> = streams
        .values()
        .filter_map(|s| s.reaction)
        .map(|d| d.as_micros().min(u128::from(u32::MAX)) as u32)
        .collect();
    reactions.sort_unstable();
    let digits_sent = streams.values().filter(|s| s.digit_sent.is_some()).count();
    let summary = serde_json::json!({
        "port": port,
        "streams": streams.len(),
        "packets": packets,
        "non_rtp": non_rtp,
        "seq_gaps": seq_gaps,
        "kernel_drops": kernel_drops(port),
        "peak_concurrent_streams": peak_streams,
        "steady_seconds": inner.len(),
        "steady_recv_pps": (recv_pps * 10.0).round() / 10.0,
        "steady_expected_pps": peak_streams * 50,
        "per_stream_pps_min": rates.first().copied().unwrap_or(0.0),
        "per_stream_pps_p50": rates.get(rates.len() / 2).copied().unwrap_or(0.0),
        "interval_ms_p50": pct(&all, 0.50),
        "interval_ms_p99": pct(&all, 0.99),
        "interval_ms_p999": pct(&all, 0.999),
        "interval_ms_max": all.last().map(|&g| f64::from(g) / 1000.0).unwrap_or(0.0),
        "interval_within_20ms_pm2_pct": within_pct,
        "arrival_interval_ms_p99": pct(&arrival, 0.99),
        "arrival_interval_ms_max": arrival.last().map(|&g| f64::from(g) / 1000.0).unwrap_or(0.0),
        "arrival_within_20ms_pm2_pct": share(arrival_within, arrival.len()),
        "digits_sent": digits_sent,
        "digit_reactions": reactions.len(),
        "digit_to_prompt_ms_p50": pct(&reactions, 0.50),
        "digit_to_prompt_ms_p99": pct(&reactions, 0.99),
        "digit_to_prompt_ms_max": reactions.last().map(|&g| f64::from(g) / 1000.0).unwrap_or(0.0),
    });
    let text = serde_json::to_string_pretty(&summary)?;
    println!("{text}");
    if let Some(path) = out {
        std::fs::write(path, text + "\n")?;
    }
    Ok(())
}
