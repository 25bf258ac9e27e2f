//! Where the next page comes from: the window's first URL, then each nextLink, and a new first
//! URL for the rest of the window when Graph refuses a nextLink (expired, invalid or
//! double-encoded skip tokens) — again and again, as long as each restart made progress.

use crate::trace::source::TraceSource;
use crate::window::Window;

/// The paging stage of one window's transfer.
#[derive(Debug)]
pub struct Paging {
    url: String,
    following_link: bool,
    restarts: u32,
    lines_at_restart: u64,
}

impl Paging {
    /// Starts at the first page of `window`.
    pub fn new(source: &TraceSource, window: &Window) -> Paging {
        Paging {
            url: source.first_page_url(window),
            following_link: false,
            restarts: 0,
            lines_at_restart: 0,
        }
    }

    /// The URL of the next page.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Moves to `next`; `false` when there is none (the window's last page was read).
    pub fn follow(&mut self, next: Option<String>) -> bool {
        match next {
            Some(next) => {
                self.url = next;
                self.following_link = true;
                true
            }
            None => false,
        }
    }

    /// Whether the page asked for is a nextLink (which Graph may refuse) rather than a first page.
    pub fn following_link(&self) -> bool {
        self.following_link
    }

    /// After a refused nextLink: asks for `rest` from its first page again, if the window sent
    /// lines since the last restart (`lines_sent` is the window's total so far). `false` when
    /// the last restart made no progress: the same refusal would come back.
    pub fn restart_after_refusal(
        &mut self,
        source: &TraceSource,
        rest: &Window,
        lines_sent: u64,
    ) -> bool {
        if self.restarts > 0 && lines_sent <= self.lines_at_restart {
            return false;
        }
        self.restarts += 1;
        self.lines_at_restart = lines_sent;
        self.restart(source, rest);
        true
    }

    /// Asks for `window` from its first page (after a broken stream, for what was not confirmed).
    pub fn restart(&mut self, source: &TraceSource, window: &Window) {
        self.url = source.first_page_url(window);
        self.following_link = false;
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }
}
