//! `foretell bench peers --nab DIR`: peer outliers on real series, the CPU files of NAB's
//! realAWSCloudwatch category taken as one group, against the per-series detector.
//!
//! The files are CPU utilisation of different EC2 and RDS instances, at 5-minute steps over
//! two weeks, recorded at different dates. They are aligned by row (each file's first row is
//! the group's first step) and each is put on its own robust scale from its first two days
//! (`(value - median) / (1.4826 × MAD)`), as a group of instances of different sizes would be
//! compared with a recording rule dividing by their usual level: an instance at 0.1 % and one
//! at 90 % would otherwise differ by their units, not their behaviour. The first two days are
//! the models' history; the rest is evaluated step by step through one [`QueryTracker`] with
//! peers over the newest hour, as in the generated cases.
//!
//! Each detector is judged per file against NAB's labelled windows: a window is found when the
//! detector flags the file inside it; an onset (a flag where the step before had none) outside
//! every window is a false alarm. This is a hard case for peers on purpose: the instances share
//! no workload, so how often the peers flag them says what a group of unrelated series costs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use foretell_core::csv::{self, Disorder};
use foretell_core::labels::Labels;
use foretell_core::model::robust;
use foretell_core::peers::PeerMethod;

// The models' history (two days) is also the stretch each file's scale comes from.
use super::peers::{DAY, HISTORY, PEER_WINDOW, STEP_MS};

const CATEGORY: &str = "realAWSCloudwatch";

/// One file of the group.
#[derive(Clone, Debug)]
struct Member {
    name: String,
    /// On the file's own robust scale.
    values: Vec<f64>,
    /// Labelled windows, as inclusive row ranges.
    windows: Vec<(usize, usize)>,
}

/// What one detector did on one file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileCounts {
    pub windows: usize,
    pub windows_found: usize,
    pub false_onsets: usize,
}

impl FileCounts {
    fn add(&mut self, other: FileCounts) {
        self.windows += other.windows;
        self.windows_found += other.windows_found;
        self.false_onsets += other.false_onsets;
    }
}

#[derive(Clone, Debug)]
pub struct NabFileRow {
    pub file: String,
    pub peers: FileCounts,
    pub per_series: FileCounts,
    pub either: FileCounts,
}

#[derive(Clone, Debug)]
pub struct NabPeerReport {
    pub method: PeerMethod,
    pub sensitivity: f64,
    pub evaluated_steps: usize,
    pub files: Vec<NabFileRow>,
}

/// The CPU files of `nab_dir/data/realAWSCloudwatch` with their windows from
/// `nab_dir/windows.json`, scaled and aligned.
fn read_group(nab_dir: &Path) -> anyhow::Result<Vec<Member>> {
    let data = nab_dir.join("data").join(CATEGORY);
    let windows_path = nab_dir.join("windows.json");
    let windows_text = std::fs::read_to_string(&windows_path)
        .with_context(|| format!("reading {}", windows_path.display()))?;
    let windows: BTreeMap<String, Vec<(String, String)>> = serde_json::from_str(&windows_text)
        .with_context(|| {
            format!(
                "{}: expected {{\"<category>/<file>.csv\": [[start, end], ...]}}",
                windows_path.display()
            )
        })?;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&data)
        .with_context(|| format!("listing {}", data.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains("cpu_utilization") && n.ends_with(".csv"))
        })
        .collect();
    paths.sort();
    anyhow::ensure!(
        paths.len() >= foretell_core::peers::MIN_GROUP_SIZE,
        "{}: {} CPU files (`*cpu_utilization*.csv`), a group needs at least {}",
        data.display(),
        paths.len(),
        foretell_core::peers::MIN_GROUP_SIZE
    );
    let mut members = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let rows =
            csv::parse(&text, Disorder::Tolerate).with_context(|| path.display().to_string())?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        anyhow::ensure!(
            rows.len() > HISTORY + PEER_WINDOW,
            "{}: {} rows; the case needs more than {}",
            path.display(),
            rows.len(),
            HISTORY + PEER_WINDOW
        );
        // Window bounds are timestamps of the file, written with microseconds.
        let row_of = |bound: &str| {
            let bound = bound.get(..19).unwrap_or(bound);
            rows.iter()
                .position(|r| r.timestamp_text.starts_with(bound))
        };
        let mut file_windows = Vec::new();
        for (start, end) in windows
            .get(&format!("{CATEGORY}/{name}"))
            .into_iter()
            .flatten()
        {
            let (Some(first), Some(last)) = (row_of(start), row_of(end)) else {
                anyhow::bail!(
                    "{}: the window {start} .. {end} of {name} does not match its rows",
                    windows_path.display()
                );
            };
            file_windows.push((first, last));
        }
        let raw: Vec<f64> = rows.iter().map(|r| r.value).collect();
        members.push(Member {
            name,
            values: robust_scale(&raw),
            windows: file_windows,
        });
    }
    let length = members.iter().map(|m| m.values.len()).min().unwrap_or(0);
    for member in &mut members {
        member.values.truncate(length);
        member.windows.retain(|&(first, _)| first < length);
    }
    Ok(members)
}

/// The values on the scale of their first [`HISTORY`] rows, as the models measure scale
/// (`model::robust`: 1.4826 × MAD, the mean absolute deviation when the MAD is 0, a sliver of
/// the level for a flat start).
fn robust_scale(values: &[f64]) -> Vec<f64> {
    let mut head: Vec<f64> = values[..HISTORY.min(values.len())]
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    if head.is_empty() {
        return values.to_vec();
    }
    let (centre, mad) = robust::median_and_mad(&mut head);
    let scale = robust::scale_from(mad, &head, centre);
    values.iter().map(|v| (v - centre) / scale).collect()
}

/// Flags per member and step after the history: (peers, per series).
fn flags(members: &[Member], method: PeerMethod, sensitivity: f64) -> Vec<Vec<[bool; 2]>> {
    let labels: Vec<Labels> = members
        .iter()
        .map(|m| Labels::from_pairs([("file", m.name.clone())]))
        .collect();
    let values: Vec<Vec<f64>> = members.iter().map(|m| m.values.clone()).collect();
    // Refitted daily over the two weeks, as a sidecar would at least.
    let mut tracker = super::peers::tracker(method, sensitivity, DAY as i64 * STEP_MS);
    super::peers::replay(&mut tracker, &labels, "file", &values, HISTORY, STEP_MS)
}

/// Windows found and false onsets of one detector's flags on one member (`flags[i]` is the
/// flag at row `HISTORY + i`).
fn judge(member: &Member, flags: &[bool]) -> FileCounts {
    let in_window = |row: usize| member.windows.iter().any(|&(a, b)| (a..=b).contains(&row));
    let windows_found = member
        .windows
        .iter()
        .filter(|&&(a, b)| (a.max(HISTORY)..=b).any(|row| flags.get(row - HISTORY) == Some(&true)))
        .count();
    let false_onsets = (0..flags.len())
        .filter(|&i| flags[i] && (i == 0 || !flags[i - 1]) && !in_window(HISTORY + i))
        .count();
    FileCounts {
        windows: member.windows.len(),
        windows_found,
        false_onsets,
    }
}

pub fn run(nab_dir: &Path, method: PeerMethod, sensitivity: f64) -> anyhow::Result<NabPeerReport> {
    let members = read_group(nab_dir)?;
    let flags = flags(&members, method, sensitivity);
    let files = members
        .iter()
        .zip(&flags)
        .map(|(member, flags)| {
            let detector = |k: Option<usize>| -> Vec<bool> {
                flags
                    .iter()
                    .map(|f| k.map_or(f[0] || f[1], |k| f[k]))
                    .collect()
            };
            NabFileRow {
                file: member.name.clone(),
                peers: judge(member, &detector(Some(0))),
                per_series: judge(member, &detector(Some(1))),
                either: judge(member, &detector(None)),
            }
        })
        .collect();
    Ok(NabPeerReport {
        method,
        sensitivity,
        evaluated_steps: members[0].values.len() - HISTORY,
        files,
    })
}

pub fn render(report: &NabPeerReport) -> String {
    let mut out = format!(
        "NAB {CATEGORY} CPU files as one group ({}, sensitivity {}, newest hour), {} steps evaluated after two days of history; windows found / false onsets\n",
        report.method.as_str(),
        report.sensitivity,
        report.evaluated_steps
    );
    out += "| file | windows | peers | per series | either |\n|---|---|---|---|---|\n";
    let cell = |c: FileCounts| format!("{} / {}", c.windows_found, c.false_onsets);
    let mut totals = [FileCounts::default(); 3];
    for row in &report.files {
        out += &format!(
            "| {} | {} | {} | {} | {} |\n",
            row.file,
            row.peers.windows,
            cell(row.peers),
            cell(row.per_series),
            cell(row.either)
        );
        for (total, counts) in totals
            .iter_mut()
            .zip([row.peers, row.per_series, row.either])
        {
            total.add(counts);
        }
    }
    out += &format!(
        "| all | {} | {} | {} | {} |\n",
        totals[0].windows,
        cell(totals[0]),
        cell(totals[1]),
        cell(totals[2])
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(values: Vec<f64>, windows: Vec<(usize, usize)>) -> Member {
        Member {
            name: "m.csv".into(),
            values,
            windows,
        }
    }

    #[test]
    fn a_window_is_found_by_a_flag_inside_it_and_onsets_outside_are_false_alarms() {
        let m = member(vec![0.0; HISTORY + 100], vec![(HISTORY + 10, HISTORY + 20)]);
        let mut flags = vec![false; 100];
        // One onset inside the window, one run of three flags and one lone flag outside it.
        flags[15] = true;
        flags[40..43].fill(true);
        flags[60] = true;
        assert_eq!(
            judge(&m, &flags),
            FileCounts {
                windows: 1,
                windows_found: 1,
                false_onsets: 2
            }
        );
        let quiet = vec![false; 100];
        assert_eq!(judge(&m, &quiet).windows_found, 0);
    }

    #[test]
    fn a_window_inside_the_history_cannot_be_found() {
        let m = member(vec![0.0; HISTORY + 10], vec![(5, 10)]);
        assert_eq!(judge(&m, &[true; 10]).windows_found, 0);
    }

    #[test]
    fn the_robust_scale_comes_from_the_first_two_days() {
        let mut values: Vec<f64> = (0..HISTORY).map(|t| 50.0 + (t % 3) as f64).collect();
        values.push(1_000.0);
        let scaled = robust_scale(&values);
        assert_eq!(scaled[1], 0.0, "the median of 50, 51, 52 is 51");
        assert!(scaled[HISTORY] > 100.0, "{}", scaled[HISTORY]);
        // A flat start does not divide by zero.
        let flat = robust_scale(&vec![3.0; HISTORY + 1]);
        assert!(flat.iter().all(|v| *v == 0.0));
        assert!(robust_scale(&[f64::NAN; 3])[0].is_nan());
    }

    #[test]
    fn a_group_reads_its_files_and_windows() {
        let dir = std::env::temp_dir().join(format!("foretell-peers-nab-{}", std::process::id()));
        let data = dir.join("data").join(CATEGORY);
        std::fs::create_dir_all(&data).unwrap();
        let stamp = |t: usize| {
            let minutes = t * 5;
            format!(
                "2014-02-{:02} {:02}:{:02}:00",
                1 + minutes / 1440,
                minutes / 60 % 24,
                minutes % 60
            )
        };
        for name in [
            "ec2_cpu_utilization_a.csv",
            "ec2_cpu_utilization_b.csv",
            "rds_cpu_utilization_c.csv",
            "elb_request_count_d.csv",
        ] {
            let mut text = String::from("timestamp,value\n");
            for t in 0..HISTORY + 50 {
                text += &format!("{},{}\n", stamp(t), t % 7);
            }
            std::fs::write(data.join(name), text).unwrap();
        }
        std::fs::write(
            dir.join("windows.json"),
            format!(
                "{{\"{CATEGORY}/ec2_cpu_utilization_a.csv\": [[\"{}.000000\", \"{}.000000\"]]}}",
                stamp(HISTORY + 5),
                stamp(HISTORY + 9)
            ),
        )
        .unwrap();
        let members = read_group(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ec2_cpu_utilization_a.csv",
                "ec2_cpu_utilization_b.csv",
                "rds_cpu_utilization_c.csv"
            ]
        );
        assert_eq!(members[0].windows, vec![(HISTORY + 5, HISTORY + 9)]);
        assert!(members[1].windows.is_empty());
    }
}
