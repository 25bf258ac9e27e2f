//! What an audit's hours are compared and repaired with: the tenant, its secret, the clock, and
//! the API's tokens and request budget — the tick's own, for a scheduled audit.

use crate::app::App;
use crate::clock::Clock;
use crate::config::Config;
use crate::secret::Secret;
use crate::tenants::Tenant;
use crate::trace::auth::TokenSource;
use crate::trace::request_budget::RequestBudget;

/// What the hours of an audit are compared with: the tenant, its secret, the clock, the API's
/// tokens and request budget (the tick's own, for a scheduled audit).
pub struct Services<'a> {
    pub app: &'a App,
    pub config: &'a Config,
    pub tenant: &'a Tenant,
    pub secret: &'a Secret,
    pub clock: &'a Clock,
    pub tokens: &'a mut TokenSource,
    pub throttle: &'a mut RequestBudget,
}
