//! Exec steps: one program, its argv exactly as planned (never a shell, so no value is ever
//! parsed or expanded), a cleared environment, and nothing left running when the step ends.
//!
//! How nothing is left running:
//! - The child leads its own process group (`process_group(0)`), so one `killpg(SIGKILL)`
//!   reaches everything it started, backgrounded children included.
//! - On timeout or cancel the group is killed at once. When the leader exits by itself the group
//!   is killed too (a straggler must not outlive its step), and this happens *before* the leader
//!   is reaped: its exit is seen with `waitid(WNOWAIT)`, which leaves it a zombie, and a zombie's
//!   pid (the group id) cannot be handed to another process, so the kill cannot hit a stranger.
//! - Output still buffered in the pipes is read after that; a process that escaped the group
//!   (`setsid`) and holds a pipe open stops the reading after [`DRAIN_BOUND`], not the step.
//! - `PR_SET_PDEATHSIG = SIGKILL` kills the leader when Spotter dies (even by `kill -9`). Linux
//!   fires it when the *thread* that forked the child exits, not the process, and tokio's
//!   blocking-pool threads come and go; so every step is forked on one thread, started once and
//!   alive as long as the process ([`spawner`]). Limits: only the leader gets the signal (its
//!   backgrounded children are not killed when Spotter dies), and the kernel clears it when the
//!   leader execs a set-user-ID or file-capability program.
//!
//! Program lookup: an `argv[0]` containing `/` is a path, relative ones against the step's
//! `workdir` (joined here explicitly rather than left to the platform's rule for
//! `current_dir`); a bare name is looked up on [`SAFE_PATH`] only, whatever the step's env says.

use super::{human_duration, os_error, Lines, Runner};
use spotter_core::runbook::{Action, Invocation, OutputSink, StepOutcome};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{mpsc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// The only `PATH` a step sees (and where a bare program name is looked up).
pub const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long output is still read once the step's process group is gone.
pub const DRAIN_BOUND: Duration = Duration::from_secs(1);

/// How long a killed leader may take to die and be reaped (a process stuck in the kernel, in
/// uninterruptible sleep, does not die at once even of SIGKILL).
const REAP_BOUND: Duration = Duration::from_secs(5);

/// Runs an exec step (see the module documentation).
pub(super) async fn run(
    runner: &Runner,
    step: &Invocation,
    out: &dyn OutputSink,
    cancel: CancellationToken,
) -> StepOutcome {
    let Action::Exec {
        argv,
        workdir,
        pass_env,
        set_env,
    } = &step.action
    else {
        unreachable!("exec::run is only called for exec steps");
    };
    let Some(program) = argv.first() else {
        return not_started("an exec step needs a program: argv is empty".into());
    };
    match std::fs::metadata(workdir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return not_started(format!(
                "cannot run `{program}`: workdir {} is not a directory",
                workdir.display()
            ))
        }
        Err(e) => {
            return not_started(format!(
                "cannot run `{program}`: workdir {}: {}",
                workdir.display(),
                os_error(&e)
            ))
        }
    }
    let path = match resolve_program(program, workdir) {
        Ok(p) => p,
        Err(reason) => return not_started(reason),
    };

    let mut cmd = Command::new(&path);
    cmd.arg0(program)
        .args(&argv[1..])
        .current_dir(workdir)
        .env_clear()
        .env("PATH", SAFE_PATH)
        .env("LANG", "C.UTF-8")
        .env("HOME", runner.env("HOME").unwrap_or_else(|| "/".into()));
    for name in pass_env {
        let value = step
            .secrets
            .get(name)
            .map(str::to_string)
            .or_else(|| runner.env(name));
        match value {
            Some(v) => {
                cmd.env(name, v);
            }
            None => out.line(&format!("note: env {name} is not set")),
        }
    }
    for (name, value) in set_env {
        cmd.env(name, value);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only makes two
    // async-signal-safe system calls (prctl, getppid); it allocates nothing on success.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // Spotter died between the fork and the prctl: the signal will never come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }

    let child = match spawn(cmd).await {
        Ok(c) => c,
        Err(e) => return not_started(format!("cannot run `{program}`: {}", os_error(&e))),
    };
    supervise(child, step.timeout, out, cancel).await
}

fn not_started(reason: String) -> StepOutcome {
    StepOutcome::NotStarted { reason }
}

/// The program `argv[0]` names (see the module documentation), or why there is none.
fn resolve_program(program: &str, workdir: &Path) -> Result<PathBuf, String> {
    if program.is_empty() {
        return Err("an exec step needs a program: argv[0] is empty".into());
    }
    if program.contains('/') {
        let p = Path::new(program);
        return Ok(if p.is_absolute() {
            p.to_path_buf()
        } else {
            workdir.join(p)
        });
    }
    SAFE_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            format!(
                "cannot run `{program}`: not found on the PATH steps get ({SAFE_PATH}); give an absolute path, or one relative to the runbook's directory such as `./{program}`"
            )
        })
}

type Job = Box<dyn FnOnce() + Send>;

/// The one thread every step is forked on (see the module documentation on
/// `PR_SET_PDEATHSIG`): started on first use, never ended.
fn spawner() -> io::Result<&'static mpsc::Sender<Job>> {
    static SPAWNER: OnceLock<Result<mpsc::Sender<Job>, String>> = OnceLock::new();
    SPAWNER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            std::thread::Builder::new()
                .name("spotter-steps".into())
                .spawn(move || rx.into_iter().for_each(|job| job()))
                .map(|_| tx)
                .map_err(|e| format!("cannot start the thread steps are started on: {e}"))
        })
        .as_ref()
        .map_err(|e| io::Error::other(e.clone()))
}

/// Spawns `cmd` on the spawner thread, inside the caller's runtime (the child's pipes and its
/// SIGCHLD watch belong to that runtime's driver).
async fn spawn(mut cmd: Command) -> io::Result<Child> {
    let handle = tokio::runtime::Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _runtime = handle.enter();
        // The step was abandoned while it was being started: nothing of it may stay.
        if let Err(Ok(child)) = tx.send(cmd.spawn()) {
            if let Some(pid) = child.id() {
                kill_group(pid as libc::pid_t);
            }
        }
    });
    spawner()?
        .send(job)
        .map_err(|_| io::Error::other("the thread steps are started on has stopped"))?;
    rx.await
        .map_err(|_| io::Error::other("the thread steps are started on has stopped"))?
}

fn kill_group(pgid: libc::pid_t) {
    // SAFETY: a plain system call; ESRCH (the group is already empty) is fine.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
}

/// Kills the group when a step is abandoned half-way (its future dropped): the leader is not
/// reaped then, so the group id is still ours.
struct GroupGuard {
    pgid: libc::pid_t,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            kill_group(self.pgid);
        }
    }
}

/// Tells when the leader has exited without reaping it (`waitid` with `WNOWAIT`): checked on
/// every SIGCHLD, and on a slow tick in case a signal was coalesced or missed.
struct LeaderWatch {
    pid: libc::pid_t,
    sigchld: Option<tokio::signal::unix::Signal>,
    tick: tokio::time::Interval,
}

impl LeaderWatch {
    fn new(pid: libc::pid_t) -> Self {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        LeaderWatch {
            pid,
            sigchld: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok(),
            tick,
        }
    }

    /// Resolves once the leader has exited (cancel-safe: all state lives in `self`).
    async fn exited(&mut self) {
        loop {
            if self.has_exited() {
                return;
            }
            match &mut self.sigchld {
                Some(s) => {
                    tokio::select! {
                        _ = s.recv() => {}
                        _ = self.tick.tick() => {}
                    }
                }
                None => {
                    self.tick.tick().await;
                }
            }
        }
    }

    fn has_exited(&self) -> bool {
        // SAFETY: siginfo_t is plain data; waitid fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if r == -1 {
            // ECHILD: reaped already (it cannot be running); EINTR: ask again on the next tick.
            return io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD);
        }
        // SAFETY: waitid succeeded, so `info` is initialised; si_pid is 0 while it still runs.
        unsafe { info.si_pid() != 0 }
    }
}

enum End {
    Exited,
    TimedOut,
    Cancelled,
}

/// One output pipe and its pending partial line.
struct Pipe<R> {
    reader: Option<R>,
    lines: Lines,
    buf: Box<[u8; 8192]>,
}

impl<R: AsyncRead + Unpin> Pipe<R> {
    fn new(reader: Option<R>) -> Self {
        Pipe {
            reader,
            lines: Lines::default(),
            buf: Box::new([0; 8192]),
        }
    }

    fn open(&self) -> bool {
        self.reader.is_some()
    }

    /// Reads one chunk (pending forever once closed, so a `select!` can keep it as a branch).
    async fn read(&mut self) -> io::Result<usize> {
        match &mut self.reader {
            Some(r) => r.read(&mut self.buf[..]).await,
            None => std::future::pending().await,
        }
    }

    /// Hands a read's bytes to `out`; end of file (or a read error) closes the pipe.
    fn take(&mut self, read: io::Result<usize>, out: &dyn OutputSink) {
        match read {
            Ok(n) if n > 0 => self.lines.push(&self.buf[..n], out),
            _ => {
                self.reader = None;
                self.lines.finish(out);
            }
        }
    }
}

/// Streams the child's output until it ends, is past `timeout`, or is cancelled; then makes sure
/// its whole group is gone, reads what is left, and says how it ended.
async fn supervise(
    mut child: Child,
    timeout: Duration,
    out: &dyn OutputSink,
    cancel: CancellationToken,
) -> StepOutcome {
    let Some(pid) = child.id() else {
        return StepOutcome::Failed {
            exit_code: None,
            detail: "the process ended before it could be watched".into(),
        };
    };
    let pgid = pid as libc::pid_t;
    let mut guard = GroupGuard { pgid, armed: true };
    let mut stdout = Pipe::new(child.stdout.take());
    let mut stderr = Pipe::new(child.stderr.take());
    let mut watch = LeaderWatch::new(pgid);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);

    let end = loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break End::Cancelled,
            _ = &mut deadline => break End::TimedOut,
            r = stdout.read() => stdout.take(r, out),
            r = stderr.read() => stderr.take(r, out),
            _ = watch.exited() => break End::Exited,
        }
    };
    if !matches!(end, End::Exited) {
        kill_group(pgid);
        let _ = tokio::time::timeout(REAP_BOUND, watch.exited()).await;
    }
    // Stragglers: the leader is not reaped yet, so `pgid` is still this step's group.
    kill_group(pgid);
    let status = tokio::time::timeout(REAP_BOUND, child.wait()).await;
    if matches!(status, Ok(Ok(_))) {
        guard.armed = false;
    }

    let drained = tokio::time::timeout(DRAIN_BOUND, async {
        while stdout.open() || stderr.open() {
            tokio::select! {
                r = stdout.read() => stdout.take(r, out),
                r = stderr.read() => stderr.take(r, out),
            }
        }
    })
    .await;
    if drained.is_err() {
        stdout.lines.finish(out);
        stderr.lines.finish(out);
        out.line(&format!(
            "note: the step's output was still open {} after it ended (a process outside its process group holds it); stopped reading",
            human_duration(DRAIN_BOUND)
        ));
    }

    match end {
        End::TimedOut => StepOutcome::TimedOut,
        End::Cancelled => StepOutcome::Cancelled,
        End::Exited => match status {
            Ok(Ok(s)) => outcome(s),
            Ok(Err(e)) => StepOutcome::Failed {
                exit_code: None,
                detail: format!("cannot read the exit status: {}", os_error(&e)),
            },
            Err(_) => StepOutcome::Failed {
                exit_code: None,
                detail: format!(
                    "the process exited but could not be reaped within {}",
                    human_duration(REAP_BOUND)
                ),
            },
        },
    }
}

fn outcome(status: std::process::ExitStatus) -> StepOutcome {
    match (status.code(), status.signal()) {
        (Some(0), _) => StepOutcome::Succeeded {
            detail: "exit 0".into(),
        },
        (Some(code), _) => StepOutcome::Failed {
            exit_code: Some(code),
            detail: format!("exit {code}"),
        },
        (None, Some(sig)) => StepOutcome::Failed {
            exit_code: None,
            detail: format!("killed by signal {sig}"),
        },
        (None, None) => StepOutcome::Failed {
            exit_code: None,
            detail: format!("ended without an exit code ({status})"),
        },
    }
}
