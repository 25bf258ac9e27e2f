//! The TLS stream to the Devo relay, and a close that proves the relay read everything.
//!
//! Devo sends no acknowledgements. A stream's lines count as delivered when the relay ends the
//! stream after our close_notify, or when it ended the stream on its own while idle with
//! nothing written since ([`crate::devo::look`]); a reset or a byte from the relay means the
//! stream broke. [`DevoSender::look`] gives the stream's meaning wherever the sender looks.

use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use crate::devo::error::{DevoError, hint};
use crate::devo::look::{Look, Meaning, Peer, meaning};
use crate::devo::tls::DevoTls;

/// An open stream of lines to the relay.
pub struct DevoSender {
    stream: BufWriter<TlsStream<TcpStream>>,
    address: String,
    lines: u64,
    bytes: u64,
    first_write: Option<Instant>,
    last_write: Instant,
}

impl fmt::Debug for DevoSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevoSender")
            .field("address", &self.address)
            .field("lines", &self.lines)
            .finish_non_exhaustive()
    }
}

/// What one closed stream delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivered {
    pub lines: u64,
    pub bytes: u64,
}

impl DevoSender {
    /// Connects and completes the handshake within `timeout`.
    pub async fn connect(tls: &DevoTls, timeout: Duration) -> Result<DevoSender, DevoError> {
        let address = tls.address.clone();
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(&address))
            .await
            .map_err(|_| DevoError::Connect {
                address: address.clone(),
                detail: format!("timed out after {} ms", timeout.as_millis()),
            })?
            .map_err(|e| DevoError::Connect {
                address: address.clone(),
                detail: e.to_string(),
            })?;
        let _ = tcp.set_nodelay(true);
        let handshake = |detail: String| DevoError::Handshake {
            address: address.clone(),
            server_name: tls.server_name.to_str().into_owned(),
            hint: hint(&detail),
            detail,
        };
        let stream =
            tokio::time::timeout(timeout, tls.connector.connect(tls.server_name.clone(), tcp))
                .await
                .map_err(|_| handshake(format!("timed out after {} ms", timeout.as_millis())))?
                .map_err(|e| {
                    // A TLS refusal carries a rustls error; anything else is the connection failing.
                    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
                        handshake(e.to_string())
                    } else {
                        DevoError::Connect {
                            address: address.clone(),
                            detail: format!("the connection failed during the TLS handshake: {e}"),
                        }
                    }
                })?;
        Ok(DevoSender {
            stream: BufWriter::with_capacity(64 * 1024, stream),
            address,
            lines: 0,
            bytes: 0,
            first_write: None,
            last_write: Instant::now(),
        })
    }

    fn broken(&self, detail: String) -> DevoError {
        DevoError::Stream {
            address: self.address.clone(),
            lines: self.lines,
            hint: hint(&detail),
            detail,
        }
    }

    /// How long since the last write.
    pub fn idle_for(&self) -> Duration {
        self.last_write.elapsed()
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How long since the first write (zero before it).
    pub fn since_first_write(&self) -> Duration {
        self.first_write.map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// From the first write to the last.
    pub fn writing_span(&self) -> Duration {
        self.first_write.map_or(Duration::ZERO, |t| {
            self.last_write.saturating_duration_since(t)
        })
    }

    /// Whether the relay ended or broke the stream, without waiting.
    pub async fn peer(&mut self) -> Peer {
        let mut probe = [0u8; 64];
        // A zero timeout polls the read once: `Pending` means nothing arrived.
        match tokio::time::timeout(Duration::ZERO, self.stream.get_mut().read(&mut probe)).await {
            Err(_) => Peer::Open,
            // A clean end. But a line that reached the relay after it closed is answered with a
            // reset, which the socket keeps as its error behind the end of stream: then the
            // last write was not read.
            Ok(Ok(0)) => match self.stream.get_ref().get_ref().0.take_error() {
                Ok(None) => Peer::Ended,
                Ok(Some(e)) | Err(e) => Peer::Broken(format!(
                    "the relay ended the stream, then reset it: a line written as it closed was not read ({e})"
                )),
            },
            Ok(Ok(n)) => Peer::Broken(format!("the relay sent {n} unexpected bytes")),
            Ok(Err(e)) => Peer::Broken(e.to_string()),
        }
    }

    /// What the stream's state means now, for streams closed after `idle_limit` without a
    /// write; waits (at most [`crate::devo::look::SETTLE`]) when the relay ended the stream
    /// right after a write.
    pub async fn look(&mut self, idle_limit: Duration) -> Meaning {
        loop {
            match meaning(self.peer().await, self.idle_for(), idle_limit) {
                Look::Now(m) => return m,
                Look::Again(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Writes `lines` framed lines held in `buf`, and pushes them onto the network: a stream
    /// may then wait idle between pages without holding lines back.
    pub async fn send(
        &mut self,
        buf: &[u8],
        lines: u64,
        timeout: Duration,
    ) -> Result<(), DevoError> {
        let started = Instant::now();
        let write = async {
            self.stream.write_all(buf).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => {
                self.lines += lines;
                self.bytes += buf.len() as u64;
                self.last_write = Instant::now();
                self.first_write.get_or_insert(started);
                Ok(())
            }
            Ok(Err(e)) => Err(self.broken(e.to_string())),
            Err(_) => Err(self.broken(format!("writing stalled for {} ms", timeout.as_millis()))),
        }
    }

    /// Closes our side (TLS close_notify) and waits for the relay's end of stream: then the
    /// lines are delivered. A stream the relay ended while idle, with nothing written since,
    /// delivered them too ([`crate::devo::look`]); a broken one delivered nothing.
    pub async fn finish(mut self, timeout: Duration) -> Result<Delivered, DevoError> {
        match self.look(Duration::MAX).await {
            Meaning::Keep | Meaning::CloseIdle => {}
            Meaning::Confirmed => return Ok(self.ended_while_idle()),
            Meaning::Broken(seen) => return Err(self.ended_early(seen)),
        }
        let close = async {
            self.stream.flush().await?;
            self.stream.shutdown().await?;
            let mut sink = [0u8; 1024];
            loop {
                match self.stream.get_mut().read(&mut sink).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => continue,
                    // The relay closed the TCP stream without a TLS close_notify: it has read all.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        };
        match tokio::time::timeout(timeout, close).await {
            Ok(Ok(())) => Ok(Delivered {
                lines: self.lines,
                bytes: self.bytes,
            }),
            Ok(Err(e)) => Err(self.broken(e.to_string())),
            Err(_) => Err(DevoError::CloseTimeout {
                address: self.address.clone(),
                seconds: timeout.as_secs(),
                lines: self.lines,
            }),
        }
    }

    /// What a stream the relay ended while idle delivered: everything written before the pause.
    pub fn ended_while_idle(self) -> Delivered {
        Delivered {
            lines: self.lines,
            bytes: self.bytes,
        }
    }

    /// The error for a stream found broken: its lines are not confirmed.
    pub fn ended_early(&self, seen: String) -> DevoError {
        DevoError::EndedEarly {
            address: self.address.clone(),
            seen,
            lines: self.lines,
        }
    }
}
