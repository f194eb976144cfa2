//! Interop with a real peer: SIPp (Debian `sip-tester`) calls the service. Every test
//! asserts on what the service did (its call record: digits, prompts, RTP counters,
//! end reason) and on what SIPp saw, not only on SIPp's exit code.

use crate::support::{Service, Transport, prompt_frames, prompt_ids, sipp};

const DTMF_5: &str = "/usr/share/sip-tester/dtmf_2833_5.pcap";

/// The read-back prompts must have been sent whole, packet for packet.
fn assert_played_whole(record: &tongdai::call::CallRecord, ids: &[&str]) {
    for id in ids {
        let play = record
            .prompts
            .iter()
            .find(|p| p.id == *id)
            .unwrap_or_else(|| panic!("{id} not played: {:?}", record.prompts));
        assert!(play.completed, "{id} cut short: {play:?}");
        assert_eq!(
            play.frames_sent,
            prompt_frames(id),
            "{id}: every 20 ms frame sent"
        );
    }
}

async fn rfc4733_call(name: &str, transport: Transport) {
    let svc = Service::start("").await;
    let run = sipp(
        name,
        "uac_rfc4733.xml",
        svc.sip_addr(),
        transport,
        &["-key", "dtmf_pcap", DTMF_5],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    let calls = svc.wait_calls(1).await;
    let call = &calls[0];
    assert_eq!(call.digits, "5", "{call:?}");
    assert_eq!(
        call.dtmf_digits, 1,
        "decoded once despite the 3 redundant end packets"
    );
    assert_eq!(call.telephone_event_pt, Some(101));
    assert_eq!(call.codec.as_deref(), Some("PCMU"));
    assert_eq!(call.final_status, Some(200));
    assert_eq!(
        call.end_reason, "local_bye",
        "the service hung up: {call:?}"
    );
    // Barge-in: the welcome was cut by the key, then the read-back played in full.
    assert_eq!(
        prompt_ids(call),
        vec!["demo_welcome", "demo_you_pressed", "digit_5", "goodbye"]
    );
    assert!(!call.prompts[0].completed && call.prompts[0].frames_sent > 0);
    assert_played_whole(call, &["demo_you_pressed", "digit_5", "goodbye"]);
    let expected: u32 = call.prompts.iter().map(|p| p.frames_sent).sum();
    assert_eq!(call.rtp_prompt_packets_sent, u64::from(expected));
    assert!(call.rtp_packets_received > 0, "the pcap's RTP reached us");
    // SIPp saw our BYE.
    assert!(run.messages.contains("BYE sip:"), "{}", run.explain());
    svc.wait_idle_legs().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4733_digit_over_udp_is_read_back() {
    rfc4733_call("rfc4733_udp", Transport::Udp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4733_digit_over_tcp_signalling_is_read_back() {
    rfc4733_call("rfc4733_tcp", Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_info_digit_is_read_back() {
    let svc = Service::start("").await;
    let run = sipp("info", "uac_info.xml", svc.sip_addr(), Transport::Udp, &[]).await;
    assert!(run.ok(), "{}", run.explain());
    let calls = svc.wait_calls(1).await;
    let call = &calls[0];
    assert_eq!(call.digits, "7");
    assert_eq!(call.dtmf_digits, 0, "no RFC 4733 digit: it came by INFO");
    assert_eq!(call.end_reason, "local_bye");
    let ids = prompt_ids(call);
    assert_eq!(
        ids[ids.len() - 3..],
        ["demo_you_pressed", "digit_7", "goodbye"]
    );
    assert_played_whole(call, &["demo_you_pressed", "digit_7", "goodbye"]);
    assert!(run.messages.contains("SIP/2.0 200 OK"), "INFO answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_answer_gets_487() {
    let svc = Service::start("[sip]\nanswer_delay = \"3s\"\n").await;
    let run = sipp(
        "cancel",
        "uac_cancel.xml",
        svc.sip_addr(),
        Transport::Udp,
        &[],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    assert!(run.messages.contains("SIP/2.0 487 Request Terminated"));
    let calls = svc.wait_calls(1).await;
    assert_eq!(calls[0].end_reason, "cancelled");
    assert_eq!(calls[0].final_status, Some(487));
    assert!(calls[0].answered_at.is_none());
    assert_eq!(calls[0].rtp_packets_sent, 0, "no media before answer");
    svc.wait_idle_legs().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_hangs_up_mid_prompt() {
    let svc = Service::start("").await;
    let run = sipp(
        "caller_hangup",
        "uac_caller_hangup.xml",
        svc.sip_addr(),
        Transport::Udp,
        &[],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    let calls = svc.wait_calls(1).await;
    let call = &calls[0];
    assert_eq!(call.end_reason, "remote_bye");
    assert_eq!(prompt_ids(call), vec!["demo_welcome"]);
    let welcome = &call.prompts[0];
    assert!(!welcome.completed);
    assert!(
        welcome.frames_sent > 0 && welcome.frames_sent < prompt_frames("demo_welcome"),
        "stopped mid-prompt: {welcome:?}"
    );
    svc.wait_idle_legs().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_hangs_up_after_no_input() {
    let svc = Service::start("").await;
    let run = sipp(
        "no_digit",
        "uac_no_digit.xml",
        svc.sip_addr(),
        Transport::Udp,
        &[],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    let calls = svc.wait_calls(1).await;
    let call = &calls[0];
    assert_eq!(call.digits, "");
    assert_eq!(call.end_reason, "local_bye");
    assert_eq!(
        prompt_ids(call),
        vec!["demo_welcome", "demo_no_input", "goodbye"]
    );
    assert_played_whole(call, &["demo_welcome", "demo_no_input", "goodbye"]);
    assert!(run.messages.contains("BYE sip:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinvite_hold_and_resume_are_answered() {
    let svc = Service::start("").await;
    let run = sipp(
        "reinvite_hold",
        "uac_reinvite_hold.xml",
        svc.sip_addr(),
        Transport::Udp,
        &[],
    )
    .await;
    // SIPp itself checked a=recvonly in the hold answer and a=sendrecv in the resume.
    assert!(run.ok(), "{}", run.explain());
    let calls = svc.wait_calls(1).await;
    assert_eq!(calls[0].reoffers, 2);
    assert_eq!(calls[0].end_reason, "remote_bye");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_number_gets_404_and_no_codec_gets_488_and_options_200() {
    let svc = Service::start("").await;
    let run = sipp(
        "unknown_number",
        "uac_unknown_number.xml",
        svc.sip_addr(),
        Transport::Udp,
        &[],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    assert!(run.messages.contains("SIP/2.0 404 Not Found"));

    let run = sipp(
        "no_codec",
        "uac_no_codec.xml",
        svc.sip_addr(),
        Transport::Udp,
        &[],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    assert!(run.messages.contains("SIP/2.0 488 Not Acceptable Here"));

    let run = sipp(
        "options",
        "uac_options.xml",
        svc.sip_addr(),
        Transport::Tcp,
        &[],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    assert!(
        run.messages
            .contains("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY")
    );

    // None of these became a call.
    assert_eq!(svc.app.calls.finished_total(), 0);
    svc.wait_idle_legs().await;
}
