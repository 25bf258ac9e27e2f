//! One session of the relay stand-in: the TLS handshake, reading complete lines (or only
//! counting them), and how the session ends — the client's close, a cut (fault), or the
//! listener's clean idle close.
//!
//! Exists so the listener's API stays small and every way a session can end is in one place.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::{SessionInfo, Shared, lock};

/// How long a client gets to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the listener waits for its own close_notify and FIN to be sent.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// One accepted session: where its [`SessionInfo`] is and when it began.
struct Session<'a> {
    shared: &'a Shared,
    index: usize,
    began: Instant,
}

impl Session<'_> {
    /// Changes the session's info and wakes the waiters.
    fn update(&self, f: impl FnOnce(&mut SessionInfo)) {
        if let Some(s) = lock(&self.shared.sessions).get_mut(self.index) {
            f(s);
        }
        self.shared.changed.notify_waiters();
    }
}

/// What one read gave.
enum Read {
    Data(usize),
    /// The client closed its write side; `clean` when with a TLS close_notify.
    Closed {
        clean: bool,
    },
    /// Nothing arrived within the idle limit.
    Idle,
}

/// Reads once, giving up after the listener's idle limit (read anew before each read); a
/// slow reader ([`super::DevoListener::read_slowly`]) reads a tenth of a second's worth at most
/// and then waits as long as the bytes it read take at its rate.
async fn read(tls: &mut TlsStream<TcpStream>, buf: &mut [u8], shared: &Shared) -> Read {
    let rate = *lock(&shared.read_rate);
    let Some(rate) = rate else {
        return read_once(tls, buf, shared).await;
    };
    let most = usize::try_from(rate / 10)
        .unwrap_or(usize::MAX)
        .clamp(1, buf.len());
    let got = read_once(tls, &mut buf[..most], shared).await;
    if let Read::Data(n) = got {
        tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
    }
    got
}

/// One read, giving up after the listener's idle limit.
async fn read_once(tls: &mut TlsStream<TcpStream>, buf: &mut [u8], shared: &Shared) -> Read {
    let idle = *lock(&shared.idle_limit);
    let result = match idle {
        Some(limit) => match tokio::time::timeout(limit, tls.read(buf)).await {
            Ok(r) => r,
            Err(_) => return Read::Idle,
        },
        None => tls.read(buf).await,
    };
    match result {
        Ok(0) => Read::Closed { clean: true },
        Ok(n) => Read::Data(n),
        Err(_) => Read::Closed { clean: false },
    }
}

/// A TCP reset instead of a clean close: the socket is dropped with SO_LINGER 0.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// Serves one accepted connection to its end.
pub(super) async fn serve(stream: TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let Some(tls) = handshake(stream, acceptor, &shared).await else {
        return;
    };
    let cut_after = lock(&shared.cut_next).take();
    let session = Session {
        shared: &shared,
        index: register(&tls, &shared),
        began: Instant::now(),
    };
    if shared.count_only.load(std::sync::atomic::Ordering::SeqCst) {
        count_lines(tls, &session).await;
        return;
    }
    if cut_after == Some(0) {
        reset(tls.get_ref().0);
        session.update(|s| {
            s.cut = true;
            s.finished = true;
        });
        return;
    }
    keep_lines(tls, &session, cut_after).await;
}

/// The TLS handshake (bounded); a failure is recorded.
async fn handshake(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    shared: &Shared,
) -> Option<TlsStream<TcpStream>> {
    let error = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => return Some(tls),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "handshake timed out".to_string(),
    };
    lock(&shared.handshake_errors).push(error);
    shared
        .handshake_failures
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    shared.changed.notify_waiters();
    None
}

/// Adds the session to [`Shared::sessions`]; returns its index.
fn register(tls: &TlsStream<TcpStream>, shared: &Shared) -> usize {
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
    shared
        .connections
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    shared.changed.notify_waiters();
    index
}

/// Complete lines split off the received bytes, with the cut fault's count.
struct Lines {
    pending: Vec<u8>,
    received: usize,
    cut_after: Option<usize>,
}

impl Lines {
    /// Adds `data`; returns the complete lines and whether the cut fault fires now (then the
    /// lines after the n-th are not returned).
    fn push(&mut self, data: &[u8]) -> (Vec<String>, bool) {
        self.pending.extend_from_slice(data);
        let mut consumed = 0;
        let mut lines = Vec::new();
        let mut cut_now = false;
        while let Some(pos) = self.pending[consumed..].iter().position(|b| *b == b'\n') {
            let end = consumed + pos;
            lines.push(String::from_utf8_lossy(&self.pending[consumed..end]).into_owned());
            consumed = end + 1;
            self.received += 1;
            if self.cut_after == Some(self.received) {
                cut_now = true;
                break;
            }
        }
        self.pending.drain(..consumed);
        (lines, cut_now)
    }
}

/// Keeps `lines` (in memory and in the `--out` file) for session `index`.
fn store(shared: &Shared, index: usize, lines: Vec<String>) {
    if let Some(out) = &shared.out {
        let mut text = String::new();
        for l in &lines {
            text.push_str(l);
            text.push('\n');
        }
        let _ = lock(out).write_all(text.as_bytes());
    }
    shared
        .line_total
        .fetch_add(lines.len(), std::sync::atomic::Ordering::SeqCst);
    let lose = *lock(&shared.lose_per_mille);
    {
        let mut held = lock(&shared.held);
        let mut lost = lock(&shared.lost);
        for line in &lines {
            if lose.is_some_and(|p| super::query::table::loses(line, p)) {
                lost.push(line.clone());
            } else {
                held.push(line.clone());
            }
        }
    }
    let mut all = lock(&shared.lines);
    lock(&shared.line_sessions).extend(std::iter::repeat_n(index, lines.len()));
    all.extend(lines);
}

/// The session loop that keeps every complete line.
async fn keep_lines(
    mut tls: TlsStream<TcpStream>,
    session: &Session<'_>,
    cut_after: Option<usize>,
) {
    let mut lines = Lines {
        pending: Vec::new(),
        received: 0,
        cut_after,
    };
    let mut chunk = vec![0u8; 64 * 1024];
    let end = loop {
        let n = match read(&mut tls, &mut chunk, session.shared).await {
            Read::Data(n) => n,
            other => break other,
        };
        let (new_lines, cut_now) = lines.push(&chunk[..n]);
        store(session.shared, session.index, new_lines);
        let (received, began) = (lines.received, session.began);
        session.update(|s| {
            s.lines = received;
            s.bytes += n as u64;
            s.elapsed = began.elapsed();
        });
        if cut_now {
            reset(tls.get_ref().0);
            session.update(|s| {
                s.cut = true;
                s.finished = true;
            });
            return;
        }
    };
    let trailing = lines.pending.len();
    end_session(tls, session, end, |s| s.trailing_bytes = trailing).await;
}

/// Ends a session whose loop stopped on `end` (the client's close or the idle limit): the
/// listener sends its close_notify and FIN, then closes the socket.
async fn end_session(
    mut tls: TlsStream<TcpStream>,
    session: &Session<'_>,
    end: Read,
    finish: impl FnOnce(&mut SessionInfo),
) {
    let elapsed = session.began.elapsed();
    // After the client's close: close ours so it sees the end of stream. After the idle
    // limit: the relay's clean idle close.
    let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, tls.shutdown()).await;
    // Dropping the socket now stops reading it: later bytes get a reset from the kernel.
    drop(tls);
    session.update(|s| {
        finish(s);
        match end {
            Read::Closed { clean } => s.clean_close = clean,
            Read::Idle => s.idle_closed = true,
            Read::Data(_) => {}
        }
        s.elapsed = elapsed;
        s.finished = true;
    });
}

/// The count-only session loop: counts newlines and bytes, keeps nothing.
async fn count_lines(mut tls: TlsStream<TcpStream>, session: &Session<'_>) {
    let mut chunk = vec![0u8; 256 * 1024];
    let (mut lines, mut bytes, mut since_newline) = (0usize, 0u64, 0usize);
    let end = loop {
        let n = match read(&mut tls, &mut chunk, session.shared).await {
            Read::Data(n) => n,
            other => break other,
        };
        let data = &chunk[..n];
        let found = data.iter().filter(|b| **b == b'\n').count();
        since_newline = match data.iter().rposition(|b| *b == b'\n') {
            Some(last) => n - last - 1,
            None => since_newline + n,
        };
        lines += found;
        bytes += n as u64;
        session
            .shared
            .line_total
            .fetch_add(found, std::sync::atomic::Ordering::SeqCst);
    };
    end_session(tls, session, end, |s| {
        s.lines = lines;
        s.bytes = bytes;
        s.trailing_bytes = since_newline;
    })
    .await;
}
