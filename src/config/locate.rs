//! Where each key and value of a YAML file is, by its configuration path
//! (`queries[1].model.coverage`), so that problems found after deserialisation (unknown keys,
//! invalid PromQL) can name their line and column as syntax errors do.
//!
//! serde_norway keeps no positions once a value is deserialised; yaml-rust2's event parser gives
//! each event its line and column, and the paths are rebuilt from the nesting of the events.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A line and a column, both counted from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

/// The positions of the keys and values of one YAML document.
#[derive(Debug, Default)]
pub struct Locations {
    keys: HashMap<String, Position>,
    values: HashMap<String, Position>,
}

impl Locations {
    /// Reads `text`; a document yaml-rust2 cannot read gives no positions (the messages then
    /// go without them), since serde_norway has already accepted it.
    pub fn of(text: &str) -> Locations {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return Locations::default();
        }
        Locations {
            keys: builder.keys,
            values: builder.values,
        }
    }

    /// Where the key at `path` is written.
    pub fn key(&self, path: &str) -> Option<Position> {
        self.keys.get(path).copied()
    }

    /// Where the value at `path` begins.
    pub fn value(&self, path: &str) -> Option<Position> {
        self.values.get(path).copied()
    }
}

/// A container being read: a mapping (waiting for a key or for the value of `key`) or a
/// sequence (at `next` entries so far).
enum Frame {
    Mapping { path: String, key: Option<String> },
    Sequence { path: String, next: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    keys: HashMap<String, Position>,
    values: HashMap<String, Position>,
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn position(mark: Marker) -> Position {
    Position {
        line: mark.line(),
        // yaml-rust2 counts columns from 0.
        column: mark.col() + 1,
    }
}

impl Builder {
    /// The path of a node starting now, or None when it is a mapping's key; advances the
    /// container it belongs to.
    fn place_node(&mut self, scalar: Option<&str>, mark: Marker) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Sequence { path, next }) => {
                let at = format!("{path}[{next}]");
                *next += 1;
                Some(at)
            }
            Some(Frame::Mapping { path, key }) => match key.take() {
                Some(name) => Some(child(path, &name)),
                None => {
                    // A key: scalar keys are named; a complex key (rare) gets a placeholder.
                    let name = scalar.unwrap_or("?").to_owned();
                    self.keys.insert(child(path, &name), position(mark));
                    *key = Some(name);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(ref value, ..) => {
                if let Some(path) = self.place_node(Some(value), mark) {
                    self.values.insert(path, position(mark));
                }
            }
            Event::Alias(_) => {
                if let Some(path) = self.place_node(None, mark) {
                    self.values.insert(path, position(mark));
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_mapping = matches!(event, Event::MappingStart(..));
                let path = match self.place_node(None, mark) {
                    Some(path) => {
                        self.values.insert(path.clone(), position(mark));
                        path
                    }
                    // A mapping or sequence as a key: its contents have no configuration path.
                    None => "?".to_owned(),
                };
                self.stack.push(if is_mapping {
                    Frame::Mapping { path, key: None }
                } else {
                    Frame::Sequence { path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// A path of serde_ignored (`queries.0.?.stepp`, `?` for an `Option`) in the notation of
/// configuration errors (`queries[0].stepp`).
pub fn ignored_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => child(&ignored_path(parent), key),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
prometheus:
  url: http://x
queries:
  - name: a
    expr: up
    model: {coverage: 0.9, horizons: [1h, 6h]}
  - name: b
    expr: >-
      sum(rate(x[5m]))
";

    #[test]
    fn keys_and_values_are_found_by_their_configuration_path() {
        let at = Locations::of(TEXT);
        let pos = |line, column| Some(Position { line, column });
        assert_eq!(at.key("prometheus.url"), pos(2, 3));
        assert_eq!(at.value("prometheus.url"), pos(2, 8));
        assert_eq!(at.key("queries[0].expr"), pos(5, 5));
        assert_eq!(at.key("queries[1].name"), pos(7, 5));
        assert_eq!(at.key("queries[0].model.coverage"), pos(6, 13));
        assert_eq!(at.value("queries[0].model.horizons[1]"), pos(6, 43));
        assert_eq!(at.key("queries[2].name"), None);
        assert_eq!(at.key("nothing"), None);
    }

    #[test]
    fn a_document_yaml_rust2_cannot_read_has_no_positions() {
        let at = Locations::of("a: [unclosed\n");
        assert_eq!(at.key("a"), None);
    }
}
