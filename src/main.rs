//! foretell: forecasts, baselines and anomaly scores for Prometheus series, served as metrics.

fn main() -> std::process::ExitCode {
    foretell::commands::main()
}
