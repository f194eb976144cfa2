//! Message framing on stream transports (TCP/TLS), sans-IO.
//!
//! On a stream there is no datagram boundary: RFC 3261 §18.3 makes
//! `Content-Length` mandatory and the only way to find where a message ends. A
//! missing, malformed or conflicting one is unrecoverable (RFC 4475 §3.3.9): we
//! cannot know where the next message starts, so the only safe reaction is to
//! answer 400 (when the head is a request with Via and CSeq) and close.
//!
//! The framer only cuts the stream into messages; each message then goes
//! through [`super::edge::classify`] like a datagram.

use super::edge::{
    ContentLength, build_reply, content_length, find_head_end, lenient_headers, parse_headers,
    split_head,
};

/// Why a stream can no longer be framed. Every variant means: send `reply` if
/// there is one, then close the connection (nothing after this point in the
/// stream can be trusted to start a message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// RFC 3261 §18.3: on a stream, `Content-Length` is mandatory. Answer 400 with
    /// `reply` (if the head was a request we can answer), then close.
    #[error("message without Content-Length on a stream: answer 400 if possible, then close")]
    MissingContentLength { reply: Option<Vec<u8>> },
    /// Non-numeric, negative, absurd or conflicting `Content-Length` (RFC 4475
    /// ncl, mcl01). Answer 400 with `reply` if there is one, then close.
    #[error("bad Content-Length on a stream: answer 400 if possible, then close")]
    BadContentLength { reply: Option<Vec<u8>> },
    /// No end of the header section within the size limit: close (nothing to answer).
    #[error("header section larger than the limit without an empty line: close")]
    HeadTooLarge,
    /// The head announces a body that would exceed the message limit: close.
    #[error("message larger than the limit: close")]
    MessageTooLarge,
}

/// Cuts a byte stream into SIP messages.
///
/// ```
/// use tongdai_sip::framing::StreamFramer;
/// let mut f = StreamFramer::new(64 * 1024);
/// f.push(b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n");
/// assert!(f.next_message().unwrap().is_some());
/// assert_eq!(f.take_pings(), 1); // RFC 5626: answer one CRLF pong
/// ```
#[derive(Debug, Clone)]
pub struct StreamFramer {
    buf: Vec<u8>,
    max_message: usize,
    /// Where the search for the end of the head resumes, so feeding a large head
    /// byte by byte stays linear.
    scanned: usize,
    /// CRLFs skipped between messages since the last complete ping.
    crlfs: usize,
    /// RFC 5626 §4.4.1 double-CRLF pings seen and not yet taken.
    pings: usize,
}

impl StreamFramer {
    /// `max_message` bounds both the head (without its empty line) and head + body,
    /// e.g. 64 KiB; it is also what an idle peer can make us buffer.
    pub fn new(max_message: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_message,
            scanned: 0,
            crlfs: 0,
            pings: 0,
        }
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered and not yet returned as a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Number of RFC 5626 CRLFCRLF keepalive pings seen since the last call; the
    /// connection owner answers each with a single CRLF pong.
    pub fn take_pings(&mut self) -> usize {
        std::mem::take(&mut self.pings)
    }

    /// The next complete message (head + exactly `Content-Length` body bytes), or
    /// `None` if more bytes are needed. Leading CRLF keepalives are skipped.
    /// After an `Err` the connection must be closed; the buffer is cleared.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FramingError> {
        self.skip_keepalives();
        if self.buf.is_empty() {
            return Ok(None);
        }
        let from = self.scanned.saturating_sub(2);
        let Some((head_end, body_start)) = find_head_end(&self.buf, from) else {
            self.scanned = self.buf.len();
            if self.buf.len() > self.max_message {
                return Err(self.fail(FramingError::HeadTooLarge));
            }
            return Ok(None);
        };
        if head_end > self.max_message {
            return Err(self.fail(FramingError::HeadTooLarge));
        }
        let head = self.buf.get(..head_end).unwrap_or_default();
        let text = String::from_utf8_lossy(head);
        let raw = split_head(&text);
        let length = parse_headers(&raw.lines)
            .map_err(|_| ())
            .and_then(|h| content_length(&h).map_err(|_| ()));
        let length = match length {
            Ok(ContentLength::Bytes(n)) => n,
            Ok(ContentLength::Absent) => {
                let reply = reply_400(head);
                return Err(self.fail(FramingError::MissingContentLength { reply }));
            }
            Err(()) => {
                let reply = reply_400(head);
                return Err(self.fail(FramingError::BadContentLength { reply }));
            }
        };
        let total = body_start.saturating_add(length);
        if total > self.max_message {
            return Err(self.fail(FramingError::MessageTooLarge));
        }
        if self.buf.len() < total {
            // The head is known complete; keep `scanned` so we do not rescan it.
            return Ok(None);
        }
        let message: Vec<u8> = self.buf.drain(..total).collect();
        self.scanned = 0;
        self.crlfs = 0;
        Ok(Some(message))
    }

    /// RFC 3261 §7.5 / RFC 5626 §4.4.1: CRLFs between messages are ignored;
    /// every two of them form one ping.
    fn skip_keepalives(&mut self) {
        let skip = self
            .buf
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        if skip == 0 {
            return;
        }
        let lfs = self
            .buf
            .get(..skip)
            .unwrap_or_default()
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.crlfs += lfs;
        self.pings += self.crlfs / 2;
        self.crlfs %= 2;
        self.buf.drain(..skip);
        self.scanned = 0;
    }

    fn fail(&mut self, e: FramingError) -> FramingError {
        self.buf.clear();
        self.scanned = 0;
        e
    }
}

/// A 400 for a request head (never for a response: responses are not answered).
fn reply_400(head: &[u8]) -> Option<Vec<u8>> {
    if head.starts_with(b"SIP/") {
        return None;
    }
    let headers = lenient_headers(head);
    build_reply(
        400,
        headers.iter().map(|h| (h.name.as_str(), h.value.as_str())),
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::{Inbound, classify};

    const OPTIONS: &[u8] = b"OPTIONS sip:9090@tongdai.example SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-1\r\n\
From: <sip:a@example.com>;tag=1\r\n\
To: <sip:9090@tongdai.example>\r\n\
Call-ID: frame-1\r\n\
CSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

    fn message_with_body(body: &str) -> Vec<u8> {
        format!(
            "MESSAGE sip:9090@tongdai.example SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-2\r\n\
From: <sip:a@example.com>;tag=1\r\n\
To: <sip:9090@tongdai.example>\r\n\
Call-ID: frame-2\r\n\
CSeq: 2 MESSAGE\r\n\
Content-Type: text/plain\r\n\
l: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn drain(f: &mut StreamFramer) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(m) = f.next_message().unwrap() {
            out.push(m);
        }
        out
    }

    #[test]
    fn split_byte_by_byte() {
        let msg = message_with_body("hello\r\n\r\nworld");
        let mut stream = OPTIONS.to_vec();
        stream.extend_from_slice(&msg);
        let mut f = StreamFramer::new(64 * 1024);
        let mut got = Vec::new();
        for b in &stream {
            f.push(std::slice::from_ref(b));
            got.extend(drain(&mut f));
        }
        assert_eq!(got, vec![OPTIONS.to_vec(), msg]);
        assert_eq!(f.buffered(), 0);
        assert!(
            matches!(classify(&got[1]), Inbound::Request(r) if r.body == b"hello\r\n\r\nworld")
        );
    }

    #[test]
    fn two_messages_in_one_push_and_keepalives_between() {
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(OPTIONS);
        stream.extend_from_slice(b"\r\n\r\n\r\n");
        stream.extend_from_slice(OPTIONS);
        let mut f = StreamFramer::new(64 * 1024);
        f.push(&stream);
        assert_eq!(drain(&mut f), vec![OPTIONS.to_vec(), OPTIONS.to_vec()]);
        assert_eq!(f.take_pings(), 2);
        assert_eq!(f.take_pings(), 0);
    }

    #[test]
    fn ping_split_across_reads() {
        let mut f = StreamFramer::new(1024);
        f.push(b"\r\n");
        assert_eq!(f.next_message().unwrap(), None);
        f.push(b"\r\n");
        assert_eq!(f.next_message().unwrap(), None);
        assert_eq!(f.take_pings(), 1);
    }

    #[test]
    fn missing_content_length_is_fatal_with_a_400() {
        let no_cl = String::from_utf8_lossy(OPTIONS).replace("Content-Length: 0\r\n", "");
        let mut f = StreamFramer::new(64 * 1024);
        f.push(no_cl.as_bytes());
        let Err(FramingError::MissingContentLength { reply: Some(reply) }) = f.next_message()
        else {
            panic!("expected MissingContentLength with a reply");
        };
        let text = String::from_utf8(reply).unwrap();
        assert!(text.starts_with("SIP/2.0 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("Call-ID: frame-1\r\n"));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn missing_content_length_on_a_response_has_no_reply() {
        let mut f = StreamFramer::new(1024);
        f.push(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nCSeq: 1 OPTIONS\r\n\r\n");
        assert_eq!(
            f.next_message(),
            Err(FramingError::MissingContentLength { reply: None })
        );
    }

    #[test]
    fn bad_and_conflicting_content_length() {
        for cl in [
            "Content-Length: -1",
            "Content-Length: x",
            "l: 5\r\nContent-Length: 6",
        ] {
            let text = String::from_utf8_lossy(OPTIONS).replace("Content-Length: 0", cl);
            let mut f = StreamFramer::new(1024);
            f.push(text.as_bytes());
            assert!(
                matches!(
                    f.next_message(),
                    Err(FramingError::BadContentLength { reply: Some(_) })
                ),
                "{cl}"
            );
        }
    }

    #[test]
    fn head_and_message_limits() {
        let mut f = StreamFramer::new(100);
        f.push(&[b'A'; 101]);
        assert_eq!(f.next_message(), Err(FramingError::HeadTooLarge));

        let mut f = StreamFramer::new(400);
        f.push(&message_with_body(&"x".repeat(300)));
        assert_eq!(f.next_message(), Err(FramingError::MessageTooLarge));

        // Below the limit without an empty line yet: wait for more.
        let mut f = StreamFramer::new(1000);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n");
        assert_eq!(f.next_message(), Ok(None));
    }

    #[test]
    fn partial_body_waits() {
        let msg = message_with_body("0123456789");
        let mut f = StreamFramer::new(4096);
        f.push(&msg[..msg.len() - 3]);
        assert_eq!(f.next_message(), Ok(None));
        f.push(&msg[msg.len() - 3..]);
        assert_eq!(f.next_message(), Ok(Some(msg)));
    }

    #[test]
    fn random_chunking_of_the_corpus_never_panics() {
        // Deterministic xorshift; feeds every RFC 4475 file, chunked randomly,
        // through the framer and then classify.
        let mut seed: u64 = 0x9090_1234_5678_abcd;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let dir = crate::edge::tests::corpus_dir();
        let mut all = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "dat") {
                all.extend(std::fs::read(path).unwrap());
                all.extend_from_slice(b"\r\n");
            }
        }
        for _ in 0..20 {
            let mut f = StreamFramer::new(64 * 1024);
            let mut pos = 0;
            while pos < all.len() {
                let n = (next() % 700) as usize + 1;
                let end = (pos + n).min(all.len());
                f.push(&all[pos..end]);
                pos = end;
                while let Ok(Some(m)) = f.next_message() {
                    let _ = classify(&m);
                }
            }
        }
    }

    /// Each RFC 4475 file sent alone on a fresh TCP connection: what the framer
    /// makes of it (the `tcp` entries of tests/data/rfc4475/expected.toml).
    #[test]
    fn corpus_over_a_stream() {
        let dir = crate::edge::tests::corpus_dir();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "dat") {
                continue;
            }
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&path).unwrap();
            let mut f = StreamFramer::new(64 * 1024);
            f.push(&bytes);
            let mut messages = Vec::new();
            let outcome = loop {
                match f.next_message() {
                    Ok(Some(m)) => messages.push(m),
                    other => break other,
                }
            };
            match name.as_str() {
                // Content-Length 9999: the framer keeps waiting for the body.
                "clerr" => assert_eq!((messages.len(), outcome), (0, Ok(None)), "{name}"),
                "inv2543" => assert!(
                    matches!(
                        outcome,
                        Err(FramingError::MissingContentLength { reply: Some(_) })
                    ),
                    "{name}"
                ),
                "mcl01" | "ncl" => assert!(
                    matches!(
                        outcome,
                        Err(FramingError::BadContentLength { reply: Some(_) })
                    ),
                    "{name}"
                ),
                // On a stream the INVITE after the REGISTER is simply the next message.
                "dblreq" => {
                    assert_eq!(messages.len(), 2, "{name}");
                    assert!(messages[1].starts_with(b"INVITE "));
                }
                _ => {
                    assert_eq!(messages.len(), 1, "{name}: {outcome:?}");
                    assert_eq!(outcome, Ok(None), "{name}");
                    assert_eq!(f.buffered(), 0, "{name}: trailing bytes");
                    // Framed alone, the message classifies as it does over UDP.
                    assert_eq!(
                        crate::edge::classify(&messages[0]),
                        crate::edge::classify(&bytes),
                        "{name}"
                    );
                }
            }
        }
    }
}
