//! Graph's request budget at the door of every attempt at a page: it waits for room under the
//! budget (or refuses when waiting cannot end within the tick), and hears every 429, which is
//! contention when this function's own spend was under its budget.

use std::time::Duration;

use crate::events::Event;
use crate::events::microsoft::{BudgetWait, QuotaContention};
use crate::trace::error::TraceError;
use crate::trace::fetch::Gate;
use crate::trace::http::Budget;
use crate::trace::request_budget::RequestBudget;

/// The request budget of one page's attempts.
pub struct BudgetGate<'a> {
    /// The tenant's budget, kept in the checkpoint.
    pub throttle: &'a mut RequestBudget,
    /// The tick's time budget and clock.
    pub budget: &'a Budget,
    /// The page, for errors.
    pub what: &'a str,
}

impl BudgetGate<'_> {
    /// Why the next request cannot go within the tick.
    fn out_of_time(&self, last: String) -> TraceError {
        TraceError::OutOfTime {
            api: "graph",
            what: self.what.to_owned(),
            last,
        }
    }
}

impl Gate for BudgetGate<'_> {
    async fn before_send(&mut self) -> Result<(), TraceError> {
        {
            let wait = self.throttle.wait_at(self.budget.now());
            if !wait.is_zero() {
                if self.throttle.lent() {
                    return Err(self.out_of_time(
                        "the share of the request budget this stage may use (the reconciliation pass, the scheduled audit, the delivery details) is used; it continues in the next tick".into(),
                    ));
                }
                if wait + Duration::from_millis(200) >= self.budget.remaining() {
                    let limit = self.throttle.limit();
                    return Err(self.out_of_time(format!(
                        "the client-side budget of {limit} requests per 5 minutes is used up; the next tick continues"
                    )));
                }
                BudgetWait { wait }.emit();
                tokio::time::sleep(wait).await;
            }
            self.throttle.record(self.budget.now());
            Ok(())
        }
    }

    fn throttled(&mut self) {
        if let Some(c) = self.throttle.throttled(self.budget.now()) {
            QuotaContention {
                own_requests: c.own_requests,
                budget: c.budget,
                lowered_to: c.lowered_to,
            }
            .emit();
        }
    }
}
