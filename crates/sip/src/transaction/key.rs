//! Matching messages to transactions (RFC 3261 §17.1.3 and §17.2.3): which transaction
//! a request or a response belongs to, as a [`TxId`].

use rsipstack::sip as rsip;
use rsipstack::sip::Method;

use crate::message::{self, header, random_token, tag_of};

/// The RFC 3261 magic cookie: a branch starting with it is unique per transaction.
const MAGIC_COOKIE: &str = "z9hG4bK";

/// Identifies one transaction, server or client.
///
/// A server transaction is the top Via's branch, its sent-by and the method (an ACK
/// names its INVITE's transaction); for RFC 2543 peers, whose branches carry no magic
/// cookie, Call-ID, CSeq number, From tag and the whole top Via stand in for the branch.
/// A client transaction is our own branch and the CSeq method: that is all a response
/// needs to find it, since the branch is ours and random.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(String);

impl TxId {
    /// The key of a client transaction we start with `branch`.
    pub(super) fn client(branch: &str, method: &str) -> TxId {
        TxId(format!("{branch}|{method}"))
    }

    /// The server transaction a request belongs to: an ACK belongs to its INVITE's, a
    /// CANCEL has its own (RFC 3261 §9.2). `None` without a Via or a CSeq.
    pub(super) fn of_request(req: &rsip::Request) -> Option<TxId> {
        let method = match req.method {
            Method::Ack => "INVITE".to_string(),
            Method::Cancel => "CANCEL".to_string(),
            _ => message::cseq(req)?.1,
        };
        Self::server(req, &method)
    }

    /// The INVITE server transaction a CANCEL (or an ACK) names: same branch and
    /// sent-by, method INVITE.
    pub(super) fn invite_of(req: &rsip::Request) -> Option<TxId> {
        Self::server(req, "INVITE")
    }

    /// The client transaction a response belongs to: our branch and its CSeq method.
    pub(super) fn of_response(resp: &rsip::Response) -> Option<TxId> {
        let via = header(resp, "Via")?;
        let branch = message::header_param(via, "branch")?;
        let (_, method) = message::cseq(resp)?;
        Some(Self::client(branch, &method))
    }

    fn server(req: &rsip::Request, method: &str) -> Option<TxId> {
        let via = header(req, "Via")?;
        message::cseq(req)?;
        let sent_by = via
            .split(';')
            .next()
            .and_then(|p| p.split_whitespace().nth(1))
            .unwrap_or("")
            .to_ascii_lowercase();
        match message::header_param(via, "branch") {
            Some(branch) if branch.starts_with(MAGIC_COOKIE) => {
                Some(TxId(format!("{branch}|{sent_by}|{method}")))
            }
            _ => {
                // RFC 2543 matching: Call-ID, CSeq number, From tag, top Via.
                let call_id = header(req, "Call-ID")?;
                let (n, _) = message::cseq(req)?;
                let from_tag = header(req, "From").and_then(tag_of).unwrap_or("");
                Some(TxId(format!(
                    "2543|{call_id}|{n}|{from_tag}|{via}|{method}"
                )))
            }
        }
    }
}

/// A fresh branch for a transaction we start (RFC 3261 §8.1.1.7: the magic cookie, then
/// enough randomness to be unique in space and time).
pub(super) fn new_branch() -> String {
    format!("{MAGIC_COOKIE}{}", random_token(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, via: &str, cseq_method: &str) -> rsip::Request {
        let text = format!(
            "{method} sip:9090@127.0.0.1 SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@h>;tag=f1\r\n\
To: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 7 {cseq_method}\r\nContent-Length: 0\r\n\r\n"
        );
        rsip::Request::try_from(text.as_str()).unwrap()
    }

    #[test]
    fn ack_and_cancel_find_their_invite_and_sent_by_counts() {
        let via = "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1";
        let invite = TxId::of_request(&request("INVITE", via, "INVITE")).unwrap();
        let ack = TxId::of_request(&request("ACK", via, "ACK")).unwrap();
        let cancel = request("CANCEL", via, "CANCEL");
        assert_eq!(
            ack, invite,
            "an ACK of a non-2xx belongs to the INVITE's transaction"
        );
        assert_ne!(
            TxId::of_request(&cancel).unwrap(),
            invite,
            "a CANCEL is its own"
        );
        assert_eq!(TxId::invite_of(&cancel).unwrap(), invite);
        let elsewhere = request(
            "INVITE",
            "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK-1",
            "INVITE",
        );
        assert_ne!(
            TxId::of_request(&elsewhere).unwrap(),
            invite,
            "same branch from another sent-by is another transaction"
        );
    }

    #[test]
    fn rfc_2543_branches_fall_back_to_the_dialog_identifiers() {
        let a = request("BYE", "SIP/2.0/UDP 10.0.0.1:5060;branch=old", "BYE");
        let b = request("BYE", "SIP/2.0/UDP 10.0.0.1:5060;branch=old", "BYE");
        let id = TxId::of_request(&a).unwrap();
        assert_eq!(id, TxId::of_request(&b).unwrap());
        assert!(id.0.starts_with("2543|c1|7|f1|"), "{id:?}");
    }

    #[test]
    fn a_response_finds_our_branch_and_method() {
        let branch = new_branch();
        assert!(branch.starts_with(MAGIC_COOKIE) && branch.len() == 23);
        let text = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport\r\n\
From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        );
        let resp = rsip::Response::try_from(text.as_str()).unwrap();
        assert_eq!(TxId::of_response(&resp), Some(TxId::client(&branch, "BYE")));
    }
}
