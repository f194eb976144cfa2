//! Media: SDP offer/answer, G.711, prompts, RTP sessions and DTMF.
//! Nothing here knows about SIP transactions or sockets' owners.
