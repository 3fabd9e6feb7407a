//! The Spark job (spark/relink_job.py, in local mode) gives exactly the lists of `relink refresh
//! --search exact` on one machine, with the same ranking window, on the real corpora; and it
//! survives a killed task. Runs `scripts/spark-check.sh`, as `make spark-check` does.

mod common;

use std::path::PathBuf;
use std::process::Command;

/// The checks use both cores: one at a time.
static SPARK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn spark_check(corpus: &str, env: &[(&str, &str)]) {
    let _one = SPARK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(shared) = common::shared() else {
        return;
    };
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if !repo.join(".spark-venv/bin/spark-submit").exists() {
        common::skip("no PySpark in ./.spark-venv (scripts/fetch-deps.sh spark installs it)");
        return;
    }
    if Command::new("java").arg("-version").output().is_err() {
        common::skip("no Java (scripts/fetch-deps.sh spark installs it as root)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(repo.join("scripts/spark-check.sh"))
        .arg(shared.join("corpora").join(corpus))
        .env("RELINK_BIN", env!("CARGO_BIN_EXE_relink"))
        .env("SPARK_CHECK_DIR", work.path())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let said = common::text(&out.stdout);
    let err = common::text(&out.stderr);
    eprintln!("{said}");
    assert!(out.status.success(), "{said}\n{err}");
    let last = said.lines().last().unwrap_or_default();
    let (equal, total) = last
        .strip_prefix("spark-check: ")
        .and_then(|l| l.strip_suffix(" lists equal"))
        .and_then(|l| l.split_once(" of "))
        .unwrap_or_else(|| panic!("no spark-check line: {said}"));
    assert_eq!(equal, total);
    assert!(total.parse::<usize>().unwrap() > 1000, "{last}");
}

#[test]
fn spark_job_equals_refresh_on_diablo4_with_a_killed_task() {
    spark_check("diablo4", &[("KILL", "1")]);
}

#[test]
fn spark_job_equals_refresh_on_huffpost_with_small_buckets() {
    spark_check(
        "huffpost",
        &[
            ("WINDOW_BEFORE", "3"),
            ("WINDOW_AFTER", "7"),
            ("JOB_FLAGS", "--bucket-days 2"),
        ],
    );
}
