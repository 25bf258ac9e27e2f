//! The Lambda's side of an invocation: what the event asks for, resolved once, and the handler
//! that runs it and reports.

pub mod handler;
mod invocation;
