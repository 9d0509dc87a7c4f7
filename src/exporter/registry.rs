//! The self-metrics registry. Each stage that reports metrics (the series path's
//! [`Telemetry`](super::telemetry::Telemetry), the alert path's telemetry) registers its
//! collector here once, when it is built, and a scrape renders every registered collector in
//! the order they registered. The exporter so knows no stage: a new stage adds its metrics by
//! registering, without the scrape or the server changing.

use std::sync::{Arc, RwLock};

use foretell_core::exposition::Format;

/// A stage's self-metrics: it appends its families, each named once, to a scrape.
pub trait Collector: Send + Sync {
    fn collect(&self, out: &mut String, format: Format);
}

/// Every stage's collector, in registration order.
#[derive(Default)]
pub struct Registry {
    collectors: RwLock<Vec<Arc<dyn Collector>>>,
}

impl Registry {
    /// A registry holding `first` (the series path's telemetry, which every process has).
    pub fn with(first: Arc<dyn Collector>) -> Registry {
        let registry = Registry::default();
        registry.register(first);
        registry
    }

    pub fn register(&self, collector: Arc<dyn Collector>) {
        self.collectors
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(collector);
    }

    /// Appends every collector's families to `out`, in registration order.
    pub fn collect(&self, out: &mut String, format: Format) {
        let collectors = self
            .collectors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for collector in collectors {
            collector.collect(out, format);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str);

    impl Collector for Fixed {
        fn collect(&self, out: &mut String, _format: Format) {
            out.push_str(self.0);
        }
    }

    #[test]
    fn collectors_render_in_the_order_they_registered() {
        let registry = Registry::with(Arc::new(Fixed("a 1\n")));
        registry.register(Arc::new(Fixed("b 2\n")));
        let mut out = String::new();
        registry.collect(&mut out, Format::Text);
        assert_eq!(out, "a 1\nb 2\n");
    }
}
