//! Step 6 of a tick: Devo event lines, and the mutual-TLS stream that carries them.

pub mod framing;
pub mod sender;

pub use framing::frame_line;
pub use sender::{DevoError, DevoSender, DevoTls};
