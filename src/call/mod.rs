//! Calls: where a leg, a media session and the call flow meet.
