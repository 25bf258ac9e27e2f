//! A local stand-in for a Devo relay: a TLS 1.2+ listener that demands a client certificate.
//!
//! Exists so the product's forwarding path (mutual TLS, line framing, flush, half-close and
//! waiting for the relay's end of stream) can be tested, demonstrated and benchmarked locally,
//! including the failures that matter: refused connections, rejected certificates and
//! connections cut mid-stream.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::pki::TestPki;

/// How long a client gets to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The session has ended.
    pub finished: bool,
    /// Bytes received (complete lines and any trailing part).
    pub bytes: u64,
    /// From the end of the handshake to the end of the stream (or the last read so far).
    pub elapsed: Duration,
}

struct Shared {
    lines: Mutex<Vec<String>>,
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
                            conns.spawn(serve(stream, acceptor.clone(), accept_shared.clone()));
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

fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

async fn serve(stream: TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            lock(&shared.handshake_errors).push(e.to_string());
            shared.handshake_failures.fetch_add(1, Ordering::SeqCst);
            shared.changed.notify_waiters();
            return;
        }
        Err(_) => {
            lock(&shared.handshake_errors).push("handshake timed out".into());
            shared.handshake_failures.fetch_add(1, Ordering::SeqCst);
            shared.changed.notify_waiters();
            return;
        }
    };
    let cut_after = lock(&shared.cut_next).take();
    let index = {
        let (_, conn) = tls.get_ref();
        let mut sessions = lock(&shared.sessions);
        sessions.push(SessionInfo {
            protocol: conn
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            server_name: conn.server_name().map(str::to_string),
            ..SessionInfo::default()
        });
        sessions.len() - 1
    };
    shared.connections.fetch_add(1, Ordering::SeqCst);
    shared.changed.notify_waiters();
    let began = Instant::now();
    if shared.count_only.load(Ordering::SeqCst) {
        count_lines(tls, &shared, index, began).await;
        return;
    }

    let update = |f: &dyn Fn(&mut SessionInfo)| {
        if let Some(s) = lock(&shared.sessions).get_mut(index) {
            f(s);
        }
        shared.changed.notify_waiters();
    };
    if cut_after == Some(0) {
        reset(tls.get_ref().0);
        update(&|s| {
            s.cut = true;
            s.finished = true;
        });
        return;
    }

    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut received = 0usize;
    let clean = loop {
        let n = match tls.read(&mut chunk).await {
            Ok(0) => break true,
            Ok(n) => n,
            Err(_) => break false,
        };
        pending.extend_from_slice(&chunk[..n]);
        let mut consumed = 0;
        let mut new_lines = Vec::new();
        let mut cut_now = false;
        while let Some(pos) = pending[consumed..].iter().position(|b| *b == b'\n') {
            let end = consumed + pos;
            new_lines.push(String::from_utf8_lossy(&pending[consumed..end]).into_owned());
            consumed = end + 1;
            received += 1;
            if cut_after == Some(received) {
                cut_now = true;
                break;
            }
        }
        pending.drain(..consumed);
        if let Some(out) = &shared.out {
            let mut file = lock(out);
            let mut text = String::new();
            for l in &new_lines {
                text.push_str(l);
                text.push('\n');
            }
            let _ = file.write_all(text.as_bytes());
        }
        shared
            .line_total
            .fetch_add(new_lines.len(), Ordering::SeqCst);
        {
            let mut lines = lock(&shared.lines);
            lock(&shared.line_sessions).extend(std::iter::repeat_n(index, new_lines.len()));
            lines.extend(new_lines);
        }
        let bytes = n as u64;
        update(&|s| {
            s.lines = received;
            s.bytes += bytes;
            s.elapsed = began.elapsed();
        });
        if cut_now {
            reset(tls.get_ref().0);
            update(&|s| {
                s.cut = true;
                s.finished = true;
            });
            return;
        }
    };
    let trailing = pending.len();
    // The client closed its write side: close ours so it sees the end of stream.
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.shutdown()).await;
    update(&|s| {
        s.clean_close = clean;
        s.trailing_bytes = trailing;
        s.elapsed = began.elapsed();
        s.finished = true;
    });
}

/// The count-only session loop: counts newlines and bytes, keeps nothing.
async fn count_lines(
    mut tls: tokio_rustls::server::TlsStream<TcpStream>,
    shared: &Shared,
    index: usize,
    began: Instant,
) {
    let mut chunk = vec![0u8; 256 * 1024];
    let (mut lines, mut bytes, mut since_newline) = (0usize, 0u64, 0usize);
    let clean = loop {
        let n = match tls.read(&mut chunk).await {
            Ok(0) => break true,
            Ok(n) => n,
            Err(_) => break false,
        };
        let data = &chunk[..n];
        let found = data.iter().filter(|b| **b == b'\n').count();
        since_newline = match data.iter().rposition(|b| *b == b'\n') {
            Some(last) => n - last - 1,
            None => since_newline + n,
        };
        lines += found;
        bytes += n as u64;
        shared.line_total.fetch_add(found, Ordering::SeqCst);
    };
    let elapsed = began.elapsed();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.shutdown()).await;
    if let Some(s) = lock(&shared.sessions).get_mut(index) {
        s.lines = lines;
        s.bytes = bytes;
        s.clean_close = clean;
        s.trailing_bytes = since_newline;
        s.elapsed = elapsed;
        s.finished = true;
    }
    shared.changed.notify_waiters();
}
