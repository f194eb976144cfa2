//! Blind transfer (RFC 3515): our REFER in the caller's dialog, and the NOTIFYs that
//! report how the new call goes (a `message/sipfrag` status line).

use std::time::Instant;

use rsipstack::sip as rsip;

use super::{ClientMethod, DialogLayer, LegEvent, LegId, LegState};
use crate::message::{header, uri_of};
use crate::transaction::TransactionLayer;

impl DialogLayer {
    /// REFERs the far end of a confirmed leg to `target`; anything else answers
    /// `ReferAnswered { status: None }` at once.
    pub(super) fn refer(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        leg_id: LegId,
        target: &str,
    ) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        if leg.state != LegState::Confirmed {
            self.emit(LegEvent::ReferAnswered {
                leg: leg_id,
                status: None,
            });
            return;
        }
        let local_uri = uri_of(&leg.local).to_string();
        let extra = format!("Refer-To: <{target}>\r\nReferred-By: <{local_uri}>\r\n");
        self.send_in_dialog(now, txns, leg_id, ClientMethod::Refer, &extra);
    }

    /// A NOTIFY in the leg's dialog: the status to answer it with (RFC 3515 §2.4.5).
    /// Only the `refer` event package is ours (489 otherwise); a sipfrag status line
    /// becomes a `TransferProgress`.
    pub(super) fn handle_notify(&mut self, leg_id: LegId, req: &rsip::Request) -> u16 {
        let is_refer = header(req, "Event")
            .is_some_and(|e| e.trim().to_ascii_lowercase().starts_with("refer"));
        if !is_refer {
            return 489;
        }
        let status = std::str::from_utf8(&req.body)
            .ok()
            .and_then(|b| b.trim_start().strip_prefix("SIP/2.0 "))
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse::<u16>().ok());
        if let Some(status) = status {
            self.emit(LegEvent::TransferProgress {
                leg: leg_id,
                status,
            });
        }
        200
    }
}
