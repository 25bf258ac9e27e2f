//! Step 6 of a tick: Devo event lines, and the mutual-TLS stream that carries them.

pub mod error;
pub mod framing;
pub mod look;
pub mod pace;
pub mod sender;
pub mod tls;

pub use error::DevoError;
pub use framing::frame_line;
pub use look::{Meaning, Peer};
pub use pace::Pace;
pub use sender::{Delivered, DevoSender};
pub use tls::DevoTls;
