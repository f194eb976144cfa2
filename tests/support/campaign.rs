//! Shared by the campaign tests (`tests/campaign/`, `tests/realtime/campaign_pacing.rs`):
//! SIPp as every subscriber of a campaign (`tests/sipp/uas/uas_campaign.xml`, behaviour
//! by the number's last two digits), its message trace parsed into timestamped
//! messages, RFC 4733 key pcaps, short prompts, seeding the target list and consulted
//! registrations.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use tongdai::store::{NewRegistration, RegisterOutcome, Store};
use tongdai_domain::program::{Channel, Group, Plan, ProgramConfig, Status, Subscriber};

use crate::support;
use crate::support::sipp::Transport;
pub use crate::support::sipp::Uas;

/// A copy of the bundled prompts cut to 0.2 s each: the dialer tests exercise calls,
/// not recordings, and a flow of a dozen prompts then takes a few seconds, not a
/// minute. Same ids, same format (8 kHz mono PCM16), so every dialplan compiles.
pub fn short_prompts(dir: &Path) -> PathBuf {
    let out = dir.join("prompts");
    std::fs::create_dir_all(&out).expect("prompts dir");
    let src = support::repo().join("prompts/vi");
    for entry in std::fs::read_dir(src).expect("bundled prompts") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("wav") {
            continue;
        }
        let mut reader = hound::WavReader::open(&path).expect("prompt wav");
        let spec = reader.spec();
        let samples: Vec<i16> = reader
            .samples::<i16>()
            .take(1600)
            .map(|s| s.expect("sample"))
            .collect();
        let mut w = hound::WavWriter::create(out.join(path.file_name().expect("name")), spec)
            .expect("write wav");
        for s in samples {
            w.write_sample(s).expect("sample");
        }
        w.finalize().expect("finalize");
    }
    out
}

/// `p<position>_<key>.pcap` for positions 0-3 and every key: RFC 4733 on PT 101,
/// each position at a later RTP timestamp (a second press of the same key is a new
/// event, as from a phone).
pub fn key_pcaps(dir: &Path) -> PathBuf {
    let out = dir.join("keys");
    std::fs::create_dir_all(&out).expect("keys dir");
    for pos in 0..4u32 {
        for key in "0123456789".chars() {
            support::pcap::write_dtmf_pcap(
                &out.join(format!("p{pos}_{key}.pcap")),
                key,
                101,
                160_000 + pos * 16_000,
                (100 + pos * 20) as u16,
                0x1234_5678,
            );
        }
    }
    out
}

/// SIPp as the trunk and every subscriber behind it (`uas/uas_campaign.xml`).
impl Uas {
    /// Starts `uas_campaign.xml` on a free port; `calls`: exit after that many calls
    /// (`None`: run until killed). `hold_ms`: how long the default subscriber talks;
    /// `gap_ms`: between key presses.
    pub async fn start(name: &str, calls: Option<u32>, hold_ms: u32, gap_ms: u32) -> Uas {
        Self::start_on(support::free_port(), name, calls, hold_ms, gap_ms).await
    }

    /// [`Uas::start`] on a given port.
    pub async fn start_on(
        port: u16,
        name: &str,
        calls: Option<u32>,
        hold_ms: u32,
        gap_ms: u32,
    ) -> Uas {
        let dir = support::sipp::out_dir(&format!("campaign/{name}"));
        // Loaded by SIPp from its working directory (keys/…).
        key_pcaps(&dir);
        let (hold, gap) = (hold_ms.to_string(), gap_ms.to_string());
        let calls = calls.map(|n| n.to_string());
        let mut args = vec![
            "-buff_size",
            "4194304",
            "-set",
            "hold",
            &hold,
            "-set",
            "gap",
            &gap,
        ];
        if let Some(n) = &calls {
            args.extend(["-m", n.as_str()]);
        }
        Uas::spawn(
            &dir,
            &support::repo().join("tests/sipp/uas/uas_campaign.xml"),
            port,
            Transport::Udp,
            &args,
        )
        .await
    }
}

/// One SIP message in SIPp's trace.
#[derive(Clone, Debug)]
pub struct TraceMsg {
    /// Seconds since the epoch, as SIPp stamped it (microseconds).
    pub at: f64,
    /// SIPp received it (from us) or sent it.
    pub received: bool,
    pub first_line: String,
    pub call_id: String,
    pub branch: String,
    pub cseq: String,
    pub text: String,
}

impl TraceMsg {
    pub fn is_request(&self, method: &str) -> bool {
        self.first_line.starts_with(&format!("{method} "))
    }
    pub fn status(&self) -> Option<u16> {
        self.first_line
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.text
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim())
    }
}

/// Parses SIPp's `-trace_msg` file.
pub fn parse_trace(log: &str) -> Vec<TraceMsg> {
    let mut out = Vec::new();
    for block in log
        .split("----------------------------------------------- ")
        .skip(1)
    {
        let mut lines = block.lines();
        let Some(stamp) = lines.next() else { continue };
        let Some(at) = parse_stamp(stamp.trim()) else {
            continue;
        };
        let Some(kind) = lines.next() else { continue };
        let received = kind.contains("received");
        let text: String = lines
            .skip_while(|l| l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        let first_line = text.lines().next().unwrap_or("").trim().to_string();
        if first_line.is_empty() {
            continue;
        }
        let mut msg = TraceMsg {
            at,
            received,
            first_line,
            call_id: String::new(),
            branch: String::new(),
            cseq: String::new(),
            text,
        };
        msg.call_id = msg.header("Call-ID").unwrap_or("").to_string();
        msg.cseq = msg.header("CSeq").unwrap_or("").to_string();
        msg.branch = msg
            .header("Via")
            .and_then(|v| v.split(";branch=").nth(1))
            .map(|b| b.split(';').next().unwrap_or(b).to_string())
            .unwrap_or_default();
        out.push(msg);
    }
    out
}

/// `2026-11-30 05:21:41.255128` → seconds since the epoch.
fn parse_stamp(s: &str) -> Option<f64> {
    let (date, time) = s.split_once([' ', '\t'])?;
    let (hms, micros) = time.trim().split_once('.')?;
    let ts: Timestamp = format!("{date}T{hms}Z").parse().ok()?;
    let micros: f64 = micros.trim().parse().ok()?;
    Some(ts.as_second() as f64 + micros / 1e6)
}

/// The INVITE transactions SIPp received, by Call-ID: (first receive time, branches).
/// Retransmissions share a branch; an authenticated retry is a second branch.
pub fn invites(trace: &[TraceMsg]) -> BTreeMap<String, (f64, Vec<String>)> {
    let mut out: BTreeMap<String, (f64, Vec<String>)> = BTreeMap::new();
    for m in trace
        .iter()
        .filter(|m| m.received && m.is_request("INVITE"))
    {
        let e = out
            .entry(m.call_id.clone())
            .or_insert_with(|| (m.at, Vec::new()));
        if !e.1.contains(&m.branch) {
            e.1.push(m.branch.clone());
        }
    }
    out
}

/// The Request-URI user of an INVITE (the number we dialled).
pub fn dialled_number(m: &TraceMsg) -> String {
    m.first_line
        .strip_prefix("INVITE sip:")
        .and_then(|r| r.split('@').next())
        .unwrap_or("")
        .to_string()
}

/// Puts eligible subscribers (postpaid, 400,000 VND, SMS list) on the target list.
pub async fn seed_target_list(store: &Store, numbers: &[String]) {
    for n in numbers {
        store
            .upsert_subscriber(&Subscriber {
                msisdn: n.clone(),
                plan: Plan::Postpaid,
                charge_per_cycle_vnd: 400_000,
                list_source: "sms".into(),
                name: None,
                imported_at: Timestamp::now(),
                import_batch: None,
            })
            .await
            .expect("subscriber");
    }
}

/// Registrations whose consultation is done (status `consulted`), for surveys.
pub async fn consulted(store: &Store, program: &ProgramConfig, numbers: &[String]) -> Vec<i64> {
    seed_target_list(store, numbers).await;
    let today = jiff::civil::date(2021, 12, 1);
    let mut ids = Vec::new();
    for n in numbers {
        let reg = match store
            .register(
                NewRegistration {
                    msisdn: n.clone(),
                    group: Group::One,
                    channel: Channel::Hotline,
                    specialty: Some(1),
                    call_id: None,
                    name: None,
                    fanpage_ref: None,
                },
                program,
                today,
                Timestamp::now(),
            )
            .await
            .expect("register")
        {
            RegisterOutcome::Registered(r) => r,
            other => panic!("not registered: {other:?}"),
        };
        for s in [
            Status::SentToVinmec,
            Status::AppointmentBooked,
            Status::Consulted,
        ] {
            store
                .set_status(reg.id, s, "test", "", Timestamp::now())
                .await
                .expect("status");
        }
        ids.push(reg.id);
    }
    ids
}

/// `0903` + six digits: a Vietnamese mobile; the last two digits pick the behaviour.
pub fn number(prefix: &str, middle: u32, suffix: &str) -> (String, String) {
    let national = format!("{prefix}{middle:04}{suffix}");
    let e164 = format!("+84{}", &national[1..]);
    (national, e164)
}

/// Service overrides for a campaign test: the trunk is SIPp (digest credentials
/// tongdai / s3cret, no OPTIONS: SIPp counts every request as a call), short prompts,
/// the registration window open, fast polling, and no RTP watchdog (SIPp sends RTP only
/// for keys).
pub fn overrides(trunk: SocketAddr, prompts: &Path, extra: &str) -> String {
    let base = format!(
        "[trunk]\nhost = \"127.0.0.1\"\nport = {}\nusername = \"tongdai\"\npassword = \"s3cret\"\n\
         options_interval = \"0s\"\np_asserted_identity = \"sip:9090@mobifone.vn\"\n\
         [prompts]\ndir = \"{}\"\n[program]\ntoday = \"2021-12-01\"\n\
         [rtp]\ninactivity_timeout = \"300s\"\n[dialer]\npoll_interval = \"200ms\"\n\
         instance = \"test-node\"\n",
        trunk.port(),
        prompts.display()
    );
    // `extra` wins, key by key within a section.
    support::merge_toml(&base, extra)
}

/// A policy that may call at any hour (the tests run whenever), with the given extra
/// TOML lines.
pub fn policy_toml(extra: &str) -> String {
    format!("calling_windows = [\"00:00-24:00\"]\n{extra}")
}
