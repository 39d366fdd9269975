//! Nothing of a step outlives it: on timeout, on cancel, when its leader exits leaving a
//! backgrounded child, when its future is dropped, and when Spotter itself is killed with -9.
//! (The tests use `sh -c` to background processes; production steps never run a shell.)

use super::{dead, dies_within, exec, pid_file, run, runner, Rec};
use spotter_core::runbook::{Executor, StepOutcome};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A leader that backgrounds a sleeper and sleeps itself, writing both pids.
const TWO_SLEEPERS: &str = "sleep 1000 & echo $! > bg.pid; echo $$ > leader.pid; sleep 1000";

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let mut step = exec(&["/bin/sh", "-c", TWO_SLEEPERS], dir.path());
    step.timeout = Duration::from_secs(1);
    let start = Instant::now();
    let (outcome, _) = run(&runner(&[]), &step).await;
    assert_eq!(outcome, StepOutcome::TimedOut);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    let leader = pid_file(dir.path(), "leader.pid").await;
    let bg = pid_file(dir.path(), "bg.pid").await;
    assert!(
        dies_within(leader, Duration::from_secs(2)).await,
        "leader {leader} lives"
    );
    assert!(
        dies_within(bg, Duration::from_secs(2)).await,
        "background {bg} lives"
    );
}

#[tokio::test]
async fn a_cancel_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let step = exec(&["/bin/sh", "-c", TWO_SLEEPERS], dir.path());
    let r = runner(&[]);
    let cancel = CancellationToken::new();
    let rec = Rec::default();
    let path = dir.path().to_path_buf();
    let trigger = cancel.clone();
    let (outcome, (leader, bg)) = tokio::join!(r.run(&step, &rec, cancel), async move {
        let leader = pid_file(&path, "leader.pid").await;
        let bg = pid_file(&path, "bg.pid").await;
        assert!(!dead(leader) && !dead(bg), "both run before the cancel");
        trigger.cancel();
        (leader, bg)
    });
    assert_eq!(outcome, StepOutcome::Cancelled);
    assert!(
        dies_within(leader, Duration::from_secs(2)).await,
        "leader {leader} lives"
    );
    assert!(
        dies_within(bg, Duration::from_secs(2)).await,
        "background {bg} lives"
    );
}

#[tokio::test]
async fn a_leader_that_exits_leaves_no_backgrounded_child_behind() {
    let dir = tempfile::tempdir().unwrap();
    // The sleeper keeps stdout open too: the step must not wait for it.
    let script = "sleep 1000 & echo $! > bg.pid; echo started";
    let start = Instant::now();
    let (outcome, lines) = run(&runner(&[]), &exec(&["/bin/sh", "-c", script], dir.path())).await;
    assert_eq!(
        outcome,
        StepOutcome::Succeeded {
            detail: "exit 0".into()
        }
    );
    assert_eq!(lines, ["started"]);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let bg = pid_file(dir.path(), "bg.pid").await;
    assert!(
        dies_within(bg, Duration::from_secs(2)).await,
        "background {bg} lives"
    );
}

#[tokio::test]
async fn a_process_that_left_the_group_holding_the_output_does_not_hang_the_step() {
    let dir = tempfile::tempdir().unwrap();
    // `setsid` puts the sleeper in a session of its own, out of reach of the group kill; it
    // still holds stdout. Short, so the test leaves nothing behind for long.
    // It writes its pid once it is in its own session; the leader waits for that.
    let script = "setsid sh -c 'echo $$ > escaped.pid; exec sleep 4' & \
                  while [ ! -s escaped.pid ]; do sleep 0.01; done; echo started";
    let start = Instant::now();
    let (outcome, lines) = run(&runner(&[]), &exec(&["/bin/sh", "-c", script], dir.path())).await;
    let took = start.elapsed();
    assert_eq!(
        outcome,
        StepOutcome::Succeeded {
            detail: "exit 0".into()
        }
    );
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert_eq!(lines[0], "started");
    assert!(
        lines[1].starts_with("note: the step's output was still open 1 s after it ended"),
        "{lines:?}"
    );
    let escaped = pid_file(dir.path(), "escaped.pid").await;
    // SAFETY: a plain system call on the pid this test's step started.
    unsafe { libc::kill(escaped as i32, libc::SIGKILL) };
}

#[tokio::test]
async fn an_abandoned_step_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let step = exec(&["/bin/sh", "-c", TWO_SLEEPERS], dir.path());
    let r = runner(&[]);
    let rec = Rec::default();
    // The step's future is dropped half-way (the engine's task aborted).
    let abandoned = tokio::time::timeout(
        Duration::from_millis(500),
        r.run(&step, &rec, CancellationToken::new()),
    )
    .await;
    assert!(abandoned.is_err());
    let leader = pid_file(dir.path(), "leader.pid").await;
    let bg = pid_file(dir.path(), "bg.pid").await;
    assert!(
        dies_within(leader, Duration::from_secs(2)).await,
        "leader {leader} lives"
    );
    assert!(
        dies_within(bg, Duration::from_secs(2)).await,
        "background {bg} lives"
    );
}

/// Where [`a_step_does_not_outlive_a_spotter_killed_with_sigkill`] tells its helper process to
/// write; set only in that helper.
const HELPER_DIR: &str = "SPOTTER_RUNNER_TEST_HELPER_DIR";

/// Not a test on its own: the helper process of the test below (this test binary, re-run with
/// `HELPER_DIR` set and only this function selected). It runs a step that never ends, as
/// Spotter would, until it is killed. Without `HELPER_DIR` it does nothing.
#[test]
fn helper_process_running_a_step_forever() {
    let Ok(dir) = std::env::var(HELPER_DIR) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = std::path::PathBuf::from(dir);
        let mut step = exec(
            &["/bin/sh", "-c", "echo $$ > step.pid; exec sleep 1000"],
            &dir,
        );
        step.timeout = Duration::from_secs(600);
        // Spawned on a worker task, as the engine does.
        let handle = tokio::spawn(async move { run(&runner(&[]), &step).await });
        let _ = handle.await;
    });
}

#[tokio::test]
async fn a_step_does_not_outlive_a_spotter_killed_with_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "groups::helper_process_running_a_step_forever",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let step_pid = pid_file(dir.path(), "step.pid").await;
    assert!(!dead(step_pid), "the step runs");
    helper.kill().unwrap(); // SIGKILL: no destructor, no cleanup of its own
    helper.wait().unwrap();
    assert!(
        dies_within(step_pid, Duration::from_secs(3)).await,
        "step {step_pid} outlived the process that started it"
    );
}
