//! Alerts from Alertmanager: the webhook payload foretell receives and forwards, the
//! confidence it adds, where each alert goes and what happens after a delivery attempt.

pub mod confidence;
pub mod delivery;
pub mod lookup;
pub mod rate_limit;
pub mod related;
pub mod route;
pub mod webhook;
