//! The state file of one query: its models as they were, so a restart resumes them.
//!
//! Layout, every integer little-endian:
//!
//! ```text
//! "FORETELL-STATE\n"              magic: anything else is a foreign file
//! u32 version                     FORMAT_VERSION; another is refused, never guessed at
//! u32 length, header              postcard: what the state was written under (Header)
//! (u32 length, series) × count    postcard: labels, window and model state of one series
//! [u8; 32] SHA-256                of every byte before it
//! ```
//!
//! Series are encoded one at a time, so writing needs no second copy of the state, and a
//! record's length is bounded before it is read, so a damaged length cannot allocate much.
//! A file is written beside its final name and renamed over it after an fsync: a crash
//! mid-write leaves the previous file whole.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use foretell_core::labels::Labels;
use foretell_core::model::{ForecastModel, ProbabilitySettings};
use foretell_core::store::TrackedSeries;
use foretell_core::tracker::SeriesModel;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 15] = b"FORETELL-STATE\n";
/// The encoding's version: bump it whenever a saved type changes shape (3: windows packed;
/// 4: seasonal profiles and the live record in 16-bit codes; 5: the record's expected value
/// coded from its value, 12 bytes a point; 6: the excursion's familiarity).
pub const FORMAT_VERSION: u32 = 6;
/// The largest header or series record read (a series of 100,000 points with its model is
/// well under 4 MiB).
const MAX_RECORD_BYTES: u32 = 64 << 20;

/// What a query's state was written under: restored only when the query still fetches the
/// same data, and its models kept only under the same model settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub query: String,
    pub expr: String,
    pub step_ms: i64,
    pub history_ms: i64,
    pub max_series: usize,
    pub freshness_ms: i64,
    pub model: ForecastModel,
    pub probability: ProbabilitySettings,
    /// This replica's shard, `(index, count)`.
    pub shard: (u32, u32),
    pub written_at_ms: i64,
    /// Where the next fetch starts: the grid point after the newest one evaluated.
    pub next_start_ms: Option<i64>,
    pub series: u64,
}

/// Why a state file could not be read; each is a reason to load the query's history afresh.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("no state file at {}", .0.display())]
    Missing(PathBuf),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{} is not a foretell state file", .0.display())]
    Foreign(PathBuf),
    #[error("{} has state format {found}; this version reads {FORMAT_VERSION}", path.display())]
    Version { path: PathBuf, found: u32 },
    #[error("{} is truncated", .0.display())]
    Truncated(PathBuf),
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
}

impl StateFileError {
    /// The `reason` label of `foretell_state_restores_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            StateFileError::Missing(_) => "missing",
            StateFileError::Io { .. } => "unreadable",
            StateFileError::Foreign(_) => "foreign",
            StateFileError::Version { .. } => "version",
            StateFileError::Truncated(_) => "truncated",
            StateFileError::Corrupt { .. } => "corrupt",
        }
    }
}

/// Bytes written through it are hashed and counted on their way to the file.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hash.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hash.update(&buf[..read]);
        self.bytes += read as u64;
        Ok(read)
    }
}

fn encode<T: Serialize + ?Sized>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(io::Error::other)
}

fn put_record(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let length = u32::try_from(bytes.len())
        .ok()
        .filter(|n| *n <= MAX_RECORD_BYTES)
        .ok_or_else(|| io::Error::other("a series' state is larger than 64 MiB"))?;
    out.write_all(&length.to_le_bytes())?;
    out.write_all(bytes)
}

/// Writes `header` and `series` to `path` through a temporary file beside it, renamed over
/// it once on disk. Returns the bytes written.
pub fn write<'a>(
    path: &Path,
    header: &Header,
    series: impl Iterator<Item = (&'a Labels, &'a TrackedSeries<SeriesModel>)>,
) -> Result<u64, StateFileError> {
    let io_error = |source| StateFileError::Io {
        path: path.to_owned(),
        source,
    };
    let temporary = path.with_extension("state.tmp");
    let bytes = (|| -> io::Result<u64> {
        let file = File::create(&temporary)?;
        let mut out = Hashing {
            inner: BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            bytes: 0,
        };
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        put_record(&mut out, &encode(header)?)?;
        let mut written = 0u64;
        for pair in series {
            put_record(&mut out, &encode(&pair)?)?;
            written += 1;
        }
        if written != header.series {
            return Err(io::Error::other(format!(
                "the header counts {} series, {written} were written",
                header.series
            )));
        }
        let digest = out.hash.finalize_reset();
        let total = out.bytes + digest.len() as u64;
        let mut file = out.inner.into_inner().map_err(|e| e.into_error())?;
        file.write_all(&digest)?;
        file.sync_all()?;
        Ok(total)
    })()
    .map_err(io_error)?;
    std::fs::rename(&temporary, path).map_err(io_error)?;
    // The rename itself must reach the disk, or a crash could bring the old file back.
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error)?;
    }
    Ok(bytes)
}

/// A state file read back whole and checked.
pub struct Saved {
    pub header: Header,
    pub series: Vec<(Labels, TrackedSeries<SeriesModel>)>,
}

/// Reads and checks the state file at `path`, holding at most `max_series` series. Nothing is
/// returned unless every byte is there and the checksum matches.
pub fn read(path: &Path, max_series: usize) -> Result<Saved, StateFileError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(StateFileError::Missing(path.to_owned()))
        }
        Err(source) => {
            return Err(StateFileError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let mut input = Hashing {
        inner: BufReader::with_capacity(1 << 20, file),
        hash: Sha256::new(),
        bytes: 0,
    };
    let truncated_or_io = |source: io::Error| match source.kind() {
        io::ErrorKind::UnexpectedEof => StateFileError::Truncated(path.to_owned()),
        io::ErrorKind::InvalidData => StateFileError::Corrupt {
            path: path.to_owned(),
            reason: source.to_string(),
        },
        _ => StateFileError::Io {
            path: path.to_owned(),
            source,
        },
    };
    let corrupt = |reason: String| StateFileError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let mut magic = [0u8; MAGIC.len()];
    input.read_exact(&mut magic).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            StateFileError::Foreign(path.to_owned())
        } else {
            truncated_or_io(e)
        }
    })?;
    if &magic != MAGIC {
        return Err(StateFileError::Foreign(path.to_owned()));
    }
    let version = read_u32(&mut input).map_err(truncated_or_io)?;
    if version != FORMAT_VERSION {
        return Err(StateFileError::Version {
            path: path.to_owned(),
            found: version,
        });
    }
    let mut buffer = Vec::new();
    read_record(&mut input, &mut buffer).map_err(truncated_or_io)?;
    let header: Header =
        postcard::from_bytes(&buffer).map_err(|e| corrupt(format!("header: {e}")))?;
    if header.series > max_series as u64 {
        return Err(corrupt(format!(
            "it holds {} series, more than max_series ({max_series})",
            header.series
        )));
    }
    let mut series = Vec::with_capacity(header.series as usize);
    for index in 0..header.series {
        read_record(&mut input, &mut buffer).map_err(truncated_or_io)?;
        let pair: (Labels, TrackedSeries<SeriesModel>) =
            postcard::from_bytes(&buffer).map_err(|e| corrupt(format!("series {index}: {e}")))?;
        series.push(pair);
    }
    let computed = input.hash.finalize_reset();
    let mut stored = [0u8; 32];
    input
        .inner
        .read_exact(&mut stored)
        .map_err(truncated_or_io)?;
    if computed.as_slice() != stored {
        return Err(corrupt("its checksum does not match".into()));
    }
    let mut rest = [0u8; 1];
    if input.inner.read(&mut rest).map_err(truncated_or_io)? != 0 {
        return Err(corrupt("bytes follow its checksum".into()));
    }
    Ok(Saved { header, series })
}

fn read_u32(input: &mut impl Read) -> io::Result<u32> {
    let mut bytes = [0u8; 4];
    input.read_exact(&mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

fn read_record(input: &mut impl Read, buffer: &mut Vec<u8>) -> io::Result<()> {
    let length = read_u32(input)?;
    if length > MAX_RECORD_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a record of {length} bytes"),
        ));
    }
    buffer.clear();
    buffer.resize(length as usize, 0);
    input.read_exact(buffer)
}
