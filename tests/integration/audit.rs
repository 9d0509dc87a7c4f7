//! The audit log under crashes: the real binary is killed with SIGKILL at random moments while
//! it appends, round after round on the same logs, and every log must verify afterwards with no
//! gap. Bounded: 100 rounds of at most 60 ms of writing each.

use std::process::{Command, Stdio};
use std::time::Duration;

fn foretell() -> Command {
    Command::new(env!("CARGO_BIN_EXE_foretell"))
}

#[test]
fn sigkill_during_appends_never_breaks_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("bench.keys");
    // The key `foretell audit bench` signs its scratch logs with.
    std::fs::write(&keys, format!("bench:{}\n", "42".repeat(32))).expect("keys");
    // The head of the log `name` verifies to; `written` is the head seen before. A log killed
    // while it was being created holds no audit log yet (`not a log`: the file exists, the
    // tables do not) or no record (`empty`), both exit 1; only a log never written may.
    let verify = |name: &str, written: u64| {
        let output = foretell()
            .args(["audit", "verify", "--db"])
            .arg(dir.path().join(name))
            .arg("--key-file")
            .arg(&keys)
            .output()
            .expect("verify runs");
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        if written == 0
            && (stdout.contains("PROBLEM empty:") || stdout.contains("PROBLEM not a log:"))
        {
            return 0;
        }
        assert!(
            output.status.success(),
            "{name}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let head: u64 = stdout
            .split("head seq ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("head in the report");
        head
    };
    let mut heads = (0, 0);
    let mut killed_mid_write = 0;
    for round in 0..100u64 {
        let mut child = foretell()
            .args(["audit", "bench", "--records", "3000", "--append", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bench starts");
        // A pseudo-random moment in the first 60 ms: inside the single commits, the batched
        // writer or the final verify, depending on the round.
        let delay = 2 + (round * 7919 + 13) % 58;
        std::thread::sleep(Duration::from_millis(delay));
        let still_running = child.try_wait().expect("status").is_none();
        let _ = child.kill();
        let _ = child.wait();
        killed_mid_write += u32::from(still_running);
        if round == 0 {
            // The first round creates the logs; later rounds may be killed before writing.
            std::thread::sleep(Duration::from_millis(5));
        }
        if dir.path().join("bench-single.db").exists() {
            heads.0 = verify("bench-single.db", heads.0).max(heads.0);
        }
        if dir.path().join("bench-batched.db").exists() {
            let head = verify("bench-batched.db", heads.1);
            assert!(
                head >= heads.1,
                "round {round}: the head went back from {} to {head}",
                heads.1
            );
            heads.1 = head;
        }
    }
    assert!(
        killed_mid_write >= 50,
        "only {killed_mid_write} rounds were killed while running"
    );
    assert!(heads.0 > 0, "no single-commit record was ever written");
}
