//! A local stand-in for a Devo relay: a TLS 1.2+ listener that demands a client certificate.
//!
//! Exists so the product's forwarding path (mutual TLS, line framing, flush, half-close and
//! waiting for the relay's end of stream) can be tested, demonstrated and benchmarked locally,
//! including the failures that matter: refused connections, rejected certificates,
//! connections cut mid-stream, idle sessions the relay ends cleanly and a relay that reads
//! slowly.
//!
//! `mod.rs` holds the listener and its controls; `session.rs` what happens on one session.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::pki::TestPki;

pub mod query;
mod session;

/// What happened on one accepted TLS session, for assertions in tests.
#[derive(Clone, Debug, Default)]
pub struct SessionInfo {
    /// Negotiated protocol version, e.g. "TLSv1_3".
    pub protocol: String,
    /// Server name the client sent (SNI), if any.
    pub server_name: Option<String>,
    /// Complete lines received on this session.
    pub lines: usize,
    /// The client ended the stream with a TLS close_notify (a clean close of its write side).
    pub clean_close: bool,
    /// Bytes after the last newline when the stream ended (an incomplete final line, dropped).
    pub trailing_bytes: usize,
    /// The listener cut this session on purpose (fault injection).
    pub cut: bool,
    /// The listener ended this session because it received nothing for the idle limit
    /// ([`DevoListener::close_idle_after`]): it sent close_notify and FIN and stopped reading,
    /// so bytes the client wrote afterwards were not counted.
    pub idle_closed: bool,
    /// The session has ended.
    pub finished: bool,
    /// Bytes received (complete lines and any trailing part).
    pub bytes: u64,
    /// From the end of the handshake to the end of the stream (or the last read so far).
    pub elapsed: Duration,
}

struct Shared {
    lines: Mutex<Vec<String>>,
    /// What "Devo" holds, for the Query API stand-in: the lines not lost, and lines written by
    /// another collector ([`DevoListener::hold_lines`]).
    held: Mutex<Vec<String>>,
    /// Lines the relay accepted and lost ([`DevoListener::lose_fraction`]).
    lost: Mutex<Vec<String>>,
    lose_per_mille: Mutex<Option<u32>>,
    line_sessions: Mutex<Vec<usize>>,
    line_total: AtomicUsize,
    count_only: AtomicBool,
    sessions: Mutex<Vec<SessionInfo>>,
    handshake_errors: Mutex<Vec<String>>,
    connections: AtomicUsize,
    handshake_failures: AtomicUsize,
    refused: AtomicUsize,
    refuse_next: AtomicUsize,
    cut_next: Mutex<Option<usize>>,
    idle_limit: Mutex<Option<Duration>>,
    read_rate: Mutex<Option<u64>>,
    out: Option<Mutex<std::fs::File>>,
    changed: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running relay stand-in; dropping it stops the listener and every open session.
pub struct DevoListener {
    shared: Arc<Shared>,
    address: SocketAddr,
    task: AbortHandle,
}

impl Drop for DevoListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DevoListener {
    /// Starts on 127.0.0.1 with an OS-chosen port, keeping lines in memory only.
    pub async fn start(pki: &TestPki) -> std::io::Result<DevoListener> {
        Self::start_on(pki, SocketAddr::from(([127, 0, 0, 1], 0)), None).await
    }

    /// Starts on `addr`; when `out` is given, every complete line is also appended to that file
    /// (the CLI's `--listen` and `--out`).
    pub async fn start_on(
        pki: &TestPki,
        addr: SocketAddr,
        out: Option<PathBuf>,
    ) -> std::io::Result<DevoListener> {
        let config = pki.relay_server_config()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let out = match out {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
            None => None,
        };
        let listener = TcpListener::bind(addr).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            lines: Mutex::new(Vec::new()),
            held: Mutex::new(Vec::new()),
            lost: Mutex::new(Vec::new()),
            lose_per_mille: Mutex::new(None),
            line_sessions: Mutex::new(Vec::new()),
            line_total: AtomicUsize::new(0),
            count_only: AtomicBool::new(false),
            sessions: Mutex::new(Vec::new()),
            handshake_errors: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            handshake_failures: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            refuse_next: AtomicUsize::new(0),
            cut_next: Mutex::new(None),
            idle_limit: Mutex::new(None),
            read_rate: Mutex::new(None),
            out,
            changed: Notify::new(),
        });
        let accept_shared = shared.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let refuse = accept_shared
                                .refuse_next
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                                .is_ok();
                            if refuse {
                                accept_shared.refused.fetch_add(1, Ordering::SeqCst);
                                accept_shared.changed.notify_waiters();
                                drop(stream);
                                continue;
                            }
                            conns.spawn(session::serve(stream, acceptor.clone(), accept_shared.clone()));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    },
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(DevoListener {
            shared,
            address,
            task: task.abort_handle(),
        })
    }

    /// "127.0.0.1:PORT", i.e. the product's DEVO_ADDRESS.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Complete lines (without the trailing `\n`), across all connections, in arrival order.
    pub fn lines(&self) -> Vec<String> {
        lock(&self.shared.lines).clone()
    }

    /// Every line with the index (into `sessions()`) of the TLS session that carried it, so a
    /// test can tell lines of a cut or aborted session from lines of a clean one.
    pub fn lines_by_session(&self) -> Vec<(usize, String)> {
        let lines = lock(&self.shared.lines);
        let sessions = lock(&self.shared.line_sessions);
        sessions
            .iter()
            .copied()
            .zip(lines.iter().cloned())
            .collect()
    }

    /// Number of complete lines received so far (cheaper than `lines().len()`; counts lines
    /// in count-only mode too).
    pub fn line_count(&self) -> usize {
        self.shared.line_total.load(Ordering::SeqCst)
    }

    /// Count-only mode, for benchmarks: sessions that start from now on count lines and bytes
    /// without keeping them ([`DevoListener::lines`] and `--out` get nothing, and
    /// [`DevoListener::cut_next_connection_after`] does not apply), so the listener's memory
    /// and CPU stay flat however many lines arrive.
    pub fn set_count_only(&self, on: bool) {
        self.shared.count_only.store(on, Ordering::SeqCst);
    }

    /// TLS sessions accepted (handshake completed with a valid client certificate).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections whose TLS handshake failed (no or bad client certificate, wrong protocol...).
    pub fn handshake_failures(&self) -> usize {
        self.shared.handshake_failures.load(Ordering::SeqCst)
    }

    /// Why each failed handshake failed, in order.
    pub fn handshake_errors(&self) -> Vec<String> {
        lock(&self.shared.handshake_errors).clone()
    }

    /// Connections closed on purpose before TLS (see [`DevoListener::refuse_next`]).
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// One entry per accepted TLS session, in order.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        lock(&self.shared.sessions).clone()
    }

    /// fault: the next accepted connection is cut (socket dropped without close_notify, with a
    /// TCP reset) after it has received n complete lines; those n lines are kept in lines()
    pub fn cut_next_connection_after(&self, n: usize) {
        *lock(&self.shared.cut_next) = Some(n);
    }

    /// fault: refuse (close immediately after accept, before TLS) the next n connections
    pub fn refuse_next(&self, n: usize) {
        self.shared.refuse_next.store(n, Ordering::SeqCst);
    }

    /// fault (persistent until set to `None`): a session that received no byte for `idle` is
    /// ended by the listener like real relays end idle connections (devo-sdk reconnects after
    /// 30 s idle for this reason): a TLS close_notify and a FIN, a clean end. The listener then
    /// stops reading the session: bytes the client writes afterwards are not counted as lines
    /// (the socket is closed, so the client's kernel gets a reset, as from a real relay).
    /// Applies to open sessions too, from their next read on. The session's
    /// [`SessionInfo::idle_closed`] is set.
    pub fn close_idle_after(&self, idle: Option<Duration>) {
        *lock(&self.shared.idle_limit) = idle;
    }

    /// fault (persistent until set to `None`): a congested relay that reads at most
    /// `bytes_per_second` from each session (in reads of a tenth of a second's worth), so that
    /// what a client writes queues up in the socket buffers. Applies to open sessions too, from
    /// their next read on.
    pub fn read_slowly(&self, bytes_per_second: Option<u64>) {
        *lock(&self.shared.read_rate) = bytes_per_second.map(|r| r.max(1));
    }

    /// fault (persistent until set to `None`): a relay that accepts and loses. Of the lines that
    /// arrive from now on, those whose record key (`MessageTraceId|RecipientAddress` of the
    /// JSON, else the whole line) hashes into `per_mille` thousandths are counted in
    /// [`DevoListener::lines`] (they arrived) but not held ([`DevoListener::held_lines`]): the
    /// Query API stand-in does not see them. Every line of a lost key is lost while it is on.
    pub fn lose_fraction(&self, per_mille: Option<u32>) {
        *lock(&self.shared.lose_per_mille) = per_mille.map(|p| p.min(1000));
    }

    /// Lines the relay accepted and lost, in arrival order.
    pub fn lost_lines(&self) -> Vec<String> {
        lock(&self.shared.lost).clone()
    }

    /// What "Devo" holds: the lines that arrived and were not lost, after the lines given to
    /// [`DevoListener::hold_lines`].
    pub fn held_lines(&self) -> Vec<String> {
        lock(&self.shared.held).clone()
    }

    /// Lines "Devo" holds that never came through this relay: another collector's (e.g. the
    /// hosted collector before a cut-over). Each is a whole Devo line,
    /// `<14>{timestamp} {hostname} {tag}: {json}`.
    pub fn hold_lines(&self, lines: impl IntoIterator<Item = String>) {
        lock(&self.shared.held).extend(lines);
    }

    /// Waits until at least `n` lines arrived or `timeout` passed; returns whether they did.
    pub async fn wait_for_lines(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if self.line_count() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.line_count() >= n;
            }
        }
    }

    /// Waits until every accepted session has ended or `timeout` passed; returns whether they did.
    pub async fn wait_for_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if self.sessions().iter().all(|s| s.finished) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.sessions().iter().all(|s| s.finished);
            }
        }
    }
}
