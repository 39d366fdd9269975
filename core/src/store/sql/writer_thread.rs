//! The SQLite writer's thread, and its connection's thread beside it on one CPU.
//!
//! Each SQLite statement runs on its connection's own worker thread (sqlx's design): the
//! writer hands it over and sleeps until it is done, about a dozen times a batch, and the two
//! threads never run at the same time. On different CPUs every hand-over wakes a sleeping CPU;
//! in a virtual machine that is an interrupt through the host, and measured in a storm of
//! declarations a `BEGIN` (one hand-over each way) took 250–390 µs of a 5 ms batch. With both
//! threads on one CPU a hand-over is a switch between two threads of the same CPU.
//!
//! So the writer's thread pins itself to the CPU it starts on, and opens its connection from
//! there: a thread inherits its creator's CPU affinity, so the connection's worker starts on the
//! same CPU. Everything else (the server's runtime, the readers) stays free to run on any CPU,
//! and the scheduler moves it away from a busy one. Where the process may use one CPU only, or
//! the affinity cannot be read or set, nothing is pinned; the writer works the same either way.

use super::*;

/// Runs the SQLite writer on a thread of its own, in a runtime of its own, pinned.
///
/// On a thread of its own the writer is woken at once when its statement is done; woken from
/// the connection's thread, a task of the server's runtime would wait in the runtime's shared
/// queue behind the requests being served (in a storm of declarations those waits were most of
/// a batch). PostgreSQL's connections are sockets driven by the server's runtime; its writer
/// stays there, where a storm measured faster.
///
/// If no thread can be started, the writer is dropped with its queues: the waiting writes are
/// answered "unavailable" and the next write starts the writer again.
pub(super) fn spawn_on_own_thread(writer: impl std::future::Future<Output = ()> + Send + 'static) {
    let started = std::thread::Builder::new()
        .name("spotter-writer".into())
        .spawn(move || {
            let cpu = pin_to_current_cpu();
            tracing::debug!(?cpu, "the store's writer thread started");
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(writer),
                Err(e) => tracing::error!(error = %e, "the store's writer has no runtime"),
            }
        });
    if let Err(e) = started {
        tracing::error!(error = %e, "the store's writer thread did not start");
    }
}

impl SqlStore {
    /// Closes the writer pool's idle connection (opened by migrations, on another thread), so
    /// that the writer's first batch opens its own from the writer's thread, and with it the
    /// connection's worker thread on the writer's CPU. A connection in use elsewhere is left.
    pub(super) async fn reopen_writer_connection_here(&self) {
        if let Some(conn) = self.writer.try_acquire() {
            let _ = conn.close().await;
        }
    }
}

/// Pins the calling thread to the CPU it runs on; that CPU, or `None` when nothing was pinned.
#[cfg(target_os = "linux")]
pub(super) fn pin_to_current_cpu() -> Option<usize> {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `cpu_set_t` is a plain bit array, valid all zeroes; the calls get a pointer to
    // one on this stack and its exact size, and pid 0 names the calling thread.
    unsafe {
        let cpu = usize::try_from(libc::sched_getcpu()).ok()?;
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut allowed) != 0 || libc::CPU_COUNT(&allowed) < 2 {
            return None;
        }
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        (libc::sched_setaffinity(0, size, &one) == 0).then_some(cpu)
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn pin_to_current_cpu() -> Option<usize> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The CPUs a thread of this process may run on, as `/proc` lists them ("0-1", "1").
    fn cpus_of(tid: &str) -> String {
        let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_string()
    }

    fn sqlite_workers() -> std::collections::BTreeSet<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|tid| {
                std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                    .is_ok_and(|c| c.starts_with("sqlx-sqlite"))
            })
            .collect()
    }

    /// The writer's thread pins itself, and a connection it opens gets its worker thread on the
    /// same CPU. On a machine (or in a cpuset) of one CPU there is nothing to pin.
    #[test]
    fn the_writer_and_its_connection_share_one_cpu() {
        sqlx::any::install_default_drivers();
        let multi = std::thread::available_parallelism().map_or(1, |n| n.get()) > 1;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
        let (tx, rx) = std::sync::mpsc::channel();
        super::spawn_on_own_thread(async move {
            let own = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            let own = own.split(' ').next().unwrap().to_string();
            let before = sqlite_workers();
            let pool = super::super::pool(&url, 1).await.unwrap();
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query("SELECT 1").execute(&mut *conn).await.unwrap();
            let new: Vec<String> = sqlite_workers().difference(&before).cloned().collect();
            let found = (
                cpus_of(&own),
                new.iter().map(|t| cpus_of(t)).collect::<Vec<_>>(),
            );
            tx.send(found).unwrap();
        });
        let (writer, workers) = rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
        if multi {
            assert!(
                writer.parse::<usize>().is_ok(),
                "the writer is pinned to one CPU, not {writer}"
            );
            assert!(
                workers.contains(&writer),
                "a worker of the writer's connection runs on CPU {writer}: {workers:?}"
            );
        } else {
            assert!(workers.iter().all(|w| *w == writer));
        }
    }
}
