//! The active call's record is live in the `CallLog`: supervisors see which dialplan
//! node each caller is at while the call runs, and every digit is counted by how it
//! arrived (RFC 4733 or SIP INFO). Driven by the Rust test caller.

use std::time::Duration;

use crate::support::Service;
use crate::support::client::Client;

/// Polls the active records (bounded) until `pred` holds for the only active call.
async fn wait_active(svc: &Service, what: &str, pred: impl Fn(&tongdai::call::CallRecord) -> bool) {
    for _ in 0..500 {
        if svc.app.calls.active().iter().any(&pred) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: active records {:?}", svc.app.calls.active());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_record_follows_the_dialplan_node_and_counts_digit_methods() {
    let svc = Service::start("").await;
    let mut c = Client::new(svc.sip_addr()).await;
    c.call_until_200().await;
    c.ack().await;
    // The line-check plan starts in its `welcome` menu.
    wait_active(&svc, "welcome node", |r| {
        r.ivr_node.as_deref() == Some("welcome")
    })
    .await;

    let info = c.in_dialog(
        "INFO",
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=5\r\nDuration=160\r\n",
    );
    c.send(&info).await;
    c.expect(Duration::from_secs(10), |m| m.status() == Some(200))
        .await;
    // The key moves the call on (read back, then bye): the active record shows it.
    wait_active(&svc, "moved on", |r| {
        r.digits == "5"
            && r.digit_methods.info == 1
            && matches!(r.ivr_node.as_deref(), Some("read_back" | "bye"))
    })
    .await;

    let bye = c
        .expect(Duration::from_secs(20), |m| m.is_request("BYE"))
        .await;
    c.answer_bye(&bye).await;
    let calls = svc.wait_calls(1).await;
    let call = &calls[0];
    assert_eq!(call.digits, "5");
    assert_eq!(call.digit_methods.info, 1);
    assert_eq!(call.digit_methods.rfc4733, 0);
    assert_eq!(call.dtmf_digits, 0, "no RTP digit");
    assert_eq!(call.ivr_path.first().map(String::as_str), Some("welcome"));
    assert!(call.ivr_path.iter().any(|n| n == "read_back"), "{call:?}");
    assert_eq!(
        call.ivr_node.as_deref(),
        call.ivr_path.last().map(String::as_str),
        "the last node stays on the finished record"
    );
    assert!(svc.app.calls.active().is_empty());
}
