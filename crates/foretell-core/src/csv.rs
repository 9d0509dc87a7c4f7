//! The CSV files of the offline commands: a header naming `timestamp` and `value` (other
//! columns are ignored), then one row per point in time order.

use crate::timestamp::{self, TimestampFormat};

/// One data row, with its text kept so that output rows repeat it exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// 1-based line number in the file.
    pub line: usize,
    pub timestamp_text: String,
    pub timestamp_ms: i64,
    pub value_text: String,
    /// NaN for an empty or `NaN` value: a gap, which gets no score.
    pub value: f64,
}

/// What to do with a row whose timestamp repeats or goes back in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disorder {
    Reject,
    /// Keep the row; the detector repeats the previous row's output for it.
    Tolerate,
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum CsvError {
    #[error("the file is empty; expected a header `timestamp,value` and one row per point")]
    Empty,
    #[error("line 1: the header must name a `timestamp` and a `value` column, got `{0}`")]
    Header(String),
    #[error("only a header; there are no data rows")]
    NoRows,
    #[error("line {line}: {message}")]
    Row { line: usize, message: String },
}

/// Parses the whole file (RFC 4180: quoted fields may hold commas, quotes and line breaks;
/// cells are trimmed; blank lines are skipped). Errors name the line and what is wrong with
/// it.
pub fn parse(text: &str, disorder: Disorder) -> Result<Vec<Row>, CsvError> {
    if text.trim().is_empty() {
        return Err(CsvError::Empty);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let names: Vec<String> = reader
        .headers()
        .map_err(|error| CsvError::Row {
            line: 1,
            message: error.to_string(),
        })?
        .iter()
        .map(str::to_owned)
        .collect();
    let column = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name));
    let (Some(ts_column), Some(value_column)) = (column("timestamp"), column("value")) else {
        let header = text
            .lines()
            .next()
            .unwrap_or_default()
            .trim_end_matches('\r');
        return Err(CsvError::Header(header.to_owned()));
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut format: Option<(TimestampFormat, usize)> = None;
    let mut lines = Lines::new(text);
    for record in reader.records() {
        let record = record.map_err(|error| CsvError::Row {
            line: error
                .position()
                .map_or(0, |position| position.line() as usize),
            message: error.to_string(),
        })?;
        let line = record.position().map_or(rows.len() + 2, |position| {
            lines.at(position.byte() as usize)
        });
        let row_error = |message: String| CsvError::Row { line, message };
        let (Some(ts_text), Some(value_text)) = (record.get(ts_column), record.get(value_column))
        else {
            return Err(row_error(format!(
                "{} fields, the header has {}",
                record.len(),
                names.len()
            )));
        };
        let (timestamp_ms, this_format) = timestamp::parse(ts_text).map_err(&row_error)?;
        match format {
            None => format = Some((this_format, line)),
            Some((first, first_line)) if first != this_format => {
                return Err(row_error(format!(
                    "timestamp `{ts_text}` is {this_format}, but line {first_line} uses {first}; use one format for the whole file"
                )))
            }
            Some(_) => {}
        }
        let value = match value_text {
            "" | "NaN" | "nan" => f64::NAN,
            other => other.parse::<f64>().map_err(|_| {
                row_error(format!(
                    "value `{other}` is not a number (write NaN or leave it empty for a missing point)"
                ))
            })?,
        };
        if disorder == Disorder::Reject {
            if let Some(previous) = rows.last() {
                if timestamp_ms == previous.timestamp_ms {
                    return Err(row_error(format!(
                        "timestamp `{ts_text}` repeats line {}; each point in time appears once",
                        previous.line
                    )));
                }
                if timestamp_ms < previous.timestamp_ms {
                    return Err(row_error(format!(
                        "timestamp `{ts_text}` is earlier than line {} (`{}`); sort the file by time",
                        previous.line, previous.timestamp_text
                    )));
                }
            }
        }
        rows.push(Row {
            line,
            timestamp_text: ts_text.to_owned(),
            timestamp_ms,
            value_text: value_text.to_owned(),
            value,
        });
    }
    if rows.is_empty() {
        return Err(CsvError::NoRows);
    }
    Ok(rows)
}

/// Line numbers of records from their byte offsets, counting each newline once however long
/// the file: the reader places a record after blank lines at the first of them, so a record's
/// line is that of its first non-blank character.
struct Lines<'t> {
    text: &'t str,
    counted_to: usize,
    line: usize,
}

impl<'t> Lines<'t> {
    fn new(text: &'t str) -> Self {
        Lines {
            text,
            counted_to: 0,
            line: 1,
        }
    }

    /// The 1-based line of the first non-blank character at or after `byte` (offsets only grow).
    fn at(&mut self, byte: usize) -> usize {
        let start = byte.clamp(self.counted_to, self.text.len());
        let first = self.text[start..]
            .find(|c: char| c != '\n' && c != '\r')
            .map_or(self.text.len(), |offset| start + offset);
        self.line += self.text.as_bytes()[self.counted_to..first]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.counted_to = first;
        self.line
    }
}

/// The grid step of the rows: the most common positive difference between neighbours (real
/// exports have gaps, so neither the first difference nor the mean will do).
pub fn infer_step_ms(rows: &[Row]) -> Option<i64> {
    let mut differences: Vec<i64> = rows
        .windows(2)
        .map(|pair| pair[1].timestamp_ms - pair[0].timestamp_ms)
        .filter(|d| *d > 0)
        .collect();
    differences.sort_unstable();
    let mut best: Option<(i64, usize)> = None;
    for chunk in differences.chunk_by(|a, b| a == b) {
        if best.is_none_or(|(_, count)| chunk.len() > count) {
            best = Some((chunk[0], chunk.len()));
        }
    }
    best.map(|(step, _)| step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(rows: &[&str]) -> String {
        rows.join("\n")
    }

    #[test]
    fn rows_keep_their_text_and_gaps_are_nan() {
        let rows = parse(
            &lines(&["timestamp,value", "100,1.5", "160,", "220,NaN", "280,-2e3"]),
            Disorder::Reject,
        )
        .expect("valid");
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].timestamp_ms, 100_000);
        assert_eq!(rows[0].value_text, "1.5");
        assert!(rows[1].value.is_nan() && rows[2].value.is_nan());
        assert_eq!(rows[3].value, -2000.0);
        assert_eq!(infer_step_ms(&rows), Some(60_000));
    }

    /// Issue 21, item 6: quoted fields were split on their commas.
    #[test]
    fn quoted_fields_hold_commas_quotes_and_line_breaks() {
        let text = "\"timestamp\",\"note\",\"value\"\n\"2024-01-01 00:00:00\",\"deploy, v2\",1.5\n\"2024-01-01 00:01:00\",\"said \"\"hi\"\"\nthen left\",2\n\n\"2024-01-01 00:02:00\",,NaN\n";
        let rows = parse(text, Disorder::Reject).expect("valid");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].value, 1.5);
        assert_eq!(rows[0].timestamp_text, "2024-01-01 00:00:00");
        assert_eq!(rows[1].value, 2.0);
        assert!(rows[2].value.is_nan());
        // Lines count the line breaks inside quotes: the third row starts on line 6.
        assert_eq!(
            rows.iter().map(|r| r.line).collect::<Vec<_>>(),
            vec![2, 3, 6]
        );
        // A quote left open runs to the end of the file, as RFC 4180 reads it.
        let open = parse("timestamp,value\n1,2\n2,\"3\n", Disorder::Reject).expect("valid");
        let values: Vec<f64> = open.iter().map(|r| r.value).collect();
        assert_eq!(values, vec![2.0, 3.0]);
    }

    #[test]
    fn extra_columns_and_crlf_are_accepted() {
        let rows = parse(
            "value,label,timestamp\r\n1,x,2014-04-01 00:00:00\r\n",
            Disorder::Reject,
        )
        .expect("valid");
        assert_eq!(rows[0].value, 1.0);
        assert_eq!(rows[0].timestamp_text, "2014-04-01 00:00:00");
    }

    #[test]
    fn each_bad_input_names_its_line() {
        let cases = [
            ("", CsvError::Empty.to_string()),
            ("time,v\n1,2", "line 1: the header must name a `timestamp` and a `value` column, got `time,v`".to_owned()),
            ("timestamp,value\n", CsvError::NoRows.to_string()),
            ("timestamp,value\n1,2\n2,abc", "line 3: value `abc` is not a number".to_owned()),
            ("timestamp,value\n1,2\n1,3", "line 3: timestamp `1` repeats line 2".to_owned()),
            ("timestamp,value\n5,2\n3,3", "line 3: timestamp `3` is earlier than line 2 (`5`); sort the file by time".to_owned()),
            ("timestamp,value\n1,2\n2014-04-01 00:00:00,3", "line 3: timestamp `2014-04-01 00:00:00` is `YYYY-MM-DD HH:MM:SS` (UTC), but line 2 uses Unix seconds".to_owned()),
            ("timestamp,value\nnoon,1", "line 2: `noon` is not a timestamp".to_owned()),
            ("timestamp,value\n1", "line 2: 1 fields, the header has 2".to_owned()),
        ];
        for (text, want) in cases {
            let error = parse(text, Disorder::Reject).expect_err(text).to_string();
            assert!(
                error.starts_with(&want),
                "{text:?}: got `{error}`, want `{want}`"
            );
        }
    }

    #[test]
    fn disorder_can_be_tolerated() {
        let text = "timestamp,value\n5,2\n5,3\n3,4";
        let rows = parse(text, Disorder::Tolerate).expect("tolerated");
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn the_step_is_the_most_common_difference() {
        let text = "timestamp,value\n0,1\n300,1\n600,1\n1500,1\n1800,1\n1800,1";
        let rows = parse(text, Disorder::Tolerate).expect("valid");
        assert_eq!(infer_step_ms(&rows), Some(300_000));
        let single = parse("timestamp,value\n0,1", Disorder::Reject).expect("valid");
        assert_eq!(infer_step_ms(&single), None);
    }
}
