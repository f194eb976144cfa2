//! Writes RFC 4733 telephone-event pcaps for SIPp's `play_pcap_audio`.
//!
//! The Debian package ships one pcap per key, all with the same RTP timestamp: a correct
//! decoder (which de-duplicates by timestamp and event, RFC 4733 §2.5.1.3) must treat a
//! second replay of the same file as a duplicate. Real phones start every key press at a
//! new timestamp, so the tests generate their own files, like a phone would send them.

use std::path::Path;

/// One key press: start packet (marker, duration 0), updates every 20 ms, three end
/// packets (same timestamp, E bit) — the pattern of the shipped pcaps.
pub fn write_dtmf_pcap(path: &Path, digit: char, pt: u8, timestamp: u32, seq: u16, ssrc: u32) {
    let event: u8 = match digit {
        '0'..='9' => digit as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => digit as u8 - b'A' + 12,
        _ => panic!("not a DTMF key: {digit}"),
    };
    let mut packets: Vec<(u32, Vec<u8>)> = Vec::new(); // (microseconds offset, rtp)
    let mut seq = seq;
    let mut push = |at_us: u32, marker: bool, end: bool, duration: u16| {
        let mut rtp = vec![0x80, (if marker { 0x80 } else { 0 }) | pt];
        rtp.extend_from_slice(&seq.to_be_bytes());
        rtp.extend_from_slice(&timestamp.to_be_bytes());
        rtp.extend_from_slice(&ssrc.to_be_bytes());
        rtp.push(event);
        rtp.push(if end { 0x80 | 10 } else { 10 });
        rtp.extend_from_slice(&duration.to_be_bytes());
        packets.push((at_us, rtp));
        seq = seq.wrapping_add(1);
    };
    for i in 0..8u16 {
        push(u32::from(i) * 20_000, i == 0, false, i * 160);
    }
    for i in 0..3u32 {
        push(160_000 + i * 20_000, false, true, 1280);
    }
    let mut out = Vec::new();
    // pcap global header: magic, v2.4, tz 0, sigfigs 0, snaplen 65535, Ethernet.
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (at_us, rtp) in packets {
        let udp_len = 8 + rtp.len();
        let ip_len = 20 + udp_len;
        let mut frame = Vec::new();
        frame.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        let sum = ip_checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&6000u16.to_be_bytes());
        frame.extend_from_slice(&6000u16.to_be_bytes());
        frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&0u16.to_be_bytes());
        frame.extend_from_slice(&rtp);
        out.extend_from_slice(&(1_000u32 + at_us / 1_000_000).to_le_bytes());
        out.extend_from_slice(&(at_us % 1_000_000).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    std::fs::write(path, out).expect("write pcap");
}

fn ip_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A pcap per key of `keys`, each key press at a later timestamp (as a phone sends).
pub fn key_presses(dir: &Path, keys: &str, pt: u8) -> Vec<std::path::PathBuf> {
    keys.chars()
        .enumerate()
        .map(|(i, key)| {
            let path = dir.join(format!("key{i}_{key}.pcap"));
            let i = i as u32;
            write_dtmf_pcap(
                &path,
                key,
                pt,
                160_000 + i * 16_000,
                (100 + i * 20) as u16,
                0x1234_5678,
            );
            path
        })
        .collect()
}
