//! Alerts from Alertmanager: the webhook payload foretell receives and forwards.

pub mod webhook;
