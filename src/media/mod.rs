//! The media workers: the I/O shell around the sans-IO `tongdai_media` crate — RTP
//! sockets, one epoll per worker and the one timer of its media clock.

pub mod worker;

pub use worker::{MediaHandle, MediaWorkers, WorkerStats};
