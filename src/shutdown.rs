//! Process signals: SIGTERM and SIGINT stop, SIGHUP reloads.

use tokio::signal::unix::{signal, Signal, SignalKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEvent {
    Terminate(&'static str),
    Reload,
}

pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    pub async fn next(&mut self) -> SignalEvent {
        tokio::select! {
            _ = self.term.recv() => SignalEvent::Terminate("SIGTERM"),
            _ = self.int.recv() => SignalEvent::Terminate("SIGINT"),
            _ = self.hup.recv() => SignalEvent::Reload,
        }
    }
}
