//! Media: SDP offer/answer, G.711, prompts, RTP sessions and DTMF.
//! Nothing here knows about SIP transactions or sockets' owners.
//!
//! Everything in this crate is sans-IO: plain state machines and pure functions
//! that are fed bytes and a `now: Instant` and hand back bytes, destinations, deadlines and
//! events — down to the shared media clock (`clock`) that schedules many calls' sessions.
//! The socket loop and the one timer live at the edge, in the service's media workers
//! (`tongdai::media::worker`, tokio tasks), which keeps every timing rule here (20 ms packetisation, catch-up,
//! RFC 4733 loss recovery, RTP inactivity) testable with virtual time and no sockets.

pub mod clock;
pub mod codec;
pub mod dtmf;
pub mod prompt;
pub mod rtp;
pub mod sdp;
pub mod session;

pub use clock::{MediaClock, MediaFinal, MediaNotice, SessionKey};
pub use codec::Codec;
pub use dtmf::{DigitEvent, DigitSource, Rfc4733Decoder, parse_info_digit};
pub use prompt::{Prompt, PromptCache, PromptError};
pub use sdp::{Direction, LocalMedia, Negotiated, SdpError};
pub use session::{MediaEvent, MediaSession, MediaStats, SessionParams};
