//! What people look at, rendered from values: the status pages (HTML, [`status`]), the charts
//! (SVG, [`chart`]) and text for terminals ([`markup`]). Pure functions, no I/O, no clock:
//! the server, the offline commands and the CLI fill them. They change for a different reason
//! than the models do (layout, wording), so they live apart from the core, which makes the
//! values ([`foretell_core::chart::trace`] and the record the charts draw stay there).

pub mod chart;
pub mod markup;
pub mod status;
