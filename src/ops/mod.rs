//! What an operator runs beside the schedule: the preflight check and the preview of a tick's
//! plan (the command line's `check` and `plan`).

pub mod check;
pub mod preview;
