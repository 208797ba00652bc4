//! The writer thread: the one connection that touches the database, fed commands over a
//! channel. It drains whatever is queued and runs it as one transaction (group commit), so
//! that a failing write (a version conflict) undoes only itself: either it runs in its own
//! savepoint, or it is a checked write that finds its conflicts before changing anything (the
//! hot paths: no savepoint to pay for). It commits once, and only then replies, so a reply
//! means the change is in the WAL.
//!
//! A second thread, on a connection of its own, checkpoints the WAL into the database file
//! every [`CHECKPOINT_EVERY`] (a no-op when nothing was written since): a checkpoint copies pages and syncs
//! files, which the writer thread must not wait for (SQLite's own checkpoint, which runs
//! inside a commit whenever the WAL reaches a size, only bounds the WAL's size: see `schema`).

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nudge_service::ports::StoreError;
use rusqlite::Connection;
use tokio::sync::oneshot;
use tracing::warn;

use super::error::SqliteFailure;
use crate::crash_point::{self, Point};

/// Most commands one transaction takes: bounds the latency a command waits behind others.
const MAX_BATCH: usize = 1024;

/// How long committed writes may stay in the WAL only. A checkpoint syncs the WAL, copies its
/// pages into the database file and syncs that; under load, one every half second writes each
/// page changed in that time once, where SQLite's default (every 1,000 pages, 4 MB) ran one
/// inside every few commits, with the commands of the batch waiting on its two syncs. It runs
/// beside the writer (`PASSIVE`: it never blocks a commit), so a slow disk sync delays only
/// the checkpoint.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// One command's work on the connection.
pub(super) type Work<T> = dyn FnOnce(&Connection) -> Result<T, StoreError> + Send;

/// How a command runs inside the group commit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Reads only: no savepoint.
    Read,
    /// A write in its own savepoint: if it fails, it alone is undone.
    Write,
    /// A write that, when it fails on its own account (a version conflict), has changed
    /// nothing yet: no savepoint. Should it fail after changing rows (an SQLite error
    /// half-way), the whole group commit is rolled back and every command in it fails.
    CheckedWrite,
}

/// A command as the writer thread sees it, whatever its result type.
trait Job: Send {
    /// How the command runs.
    fn kind(&self) -> Kind;
    /// Runs the command; `true` if it succeeded (its changes are to be kept).
    fn run(&mut self, conn: &Connection) -> bool;
    /// The transaction failed as a whole: the command's success did not last.
    fn fail(&mut self, failure: &SqliteFailure);
    /// Sends the outcome to the caller.
    fn reply(self: Box<Self>);
}

/// A command and the caller waiting for its result.
struct Command<T> {
    context: &'static str,
    kind: Kind,
    work: Option<Box<Work<T>>>,
    outcome: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T: Send> Job for Command<T> {
    fn kind(&self) -> Kind {
        self.kind
    }

    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let outcome = work(conn);
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn fail(&mut self, failure: &SqliteFailure) {
        // A command's own error (a conflict) says more than the batch's; keep it.
        if !matches!(self.outcome, Some(Err(_))) {
            self.outcome = Some(Err(failure.clone().into_store_error(self.context)));
        }
    }

    fn reply(self: Box<Self>) {
        let this = *self;
        let outcome = this
            .outcome
            .unwrap_or_else(|| Err(SqliteFailure::WriterStopped.into_store_error(this.context)));
        // The caller may have given up waiting (its future was dropped); nothing to do then.
        let _ = this.reply.send(outcome);
    }
}

/// The handle on the writer thread (and the checkpointer); dropping it lets the writer finish
/// its queue and close the database, after a last checkpoint.
pub(super) struct Writer {
    sender: Option<Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
    checkpointer: Option<(Sender<()>, JoinHandle<()>)>,
}

impl Writer {
    /// Starts the thread that owns `conn`, and the checkpointer on `checkpoints` (a second
    /// connection to the same file).
    pub(super) fn start(conn: Connection, checkpoints: Connection) -> Result<Writer, StoreError> {
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    // Their work is evaluate's, schedule-delay's and deliver's (ingest writes
                    // to the journal): they yield to the HTTP API as those do.
                    crate::priority::lower_this_thread();
                    f()
                })
                .map_err(|e| StoreError::backend("start SQLite thread", false, e))
        };
        let (stop, stopped) = mpsc::channel();
        let checkpointer = spawn(
            "nudge-checkpoint",
            Box::new(move || checkpoint_loop(checkpoints, stopped)),
        )?;
        let (sender, receiver) = mpsc::channel();
        let thread = spawn("nudge-sqlite", Box::new(move || serve(conn, receiver)))?;
        Ok(Writer {
            sender: Some(sender),
            thread: Some(thread),
            checkpointer: Some((stop, checkpointer)),
        })
    }

    /// Runs a write on the writer thread inside its own savepoint of the next group commit;
    /// resolves once that commit is durable.
    pub(super) async fn write<T, F>(&self, context: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(context, Kind::Write, Box::new(work)).await
    }

    /// Runs a write in the next group commit without a savepoint (SQLite copies every page a
    /// savepoint's command changes first into a sub-journal: a large part of the writer's
    /// work under load). For a command whose own errors (version conflicts, ids already
    /// applied) are all found before its first change, so that failing, it changed nothing.
    /// If it fails after changing rows anyway (SQLite failing half-way), the whole group
    /// commit is rolled back and every command in it fails as retryable.
    pub(super) async fn write_checked<T, F>(
        &self,
        context: &'static str,
        work: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(context, Kind::CheckedWrite, Box::new(work))
            .await
    }

    /// Runs a read on the writer thread: it sees every write already acknowledged.
    pub(super) async fn read<T, F>(&self, context: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(context, Kind::Read, Box::new(work)).await
    }

    async fn submit<T: Send + 'static>(
        &self,
        context: &'static str,
        kind: Kind,
        work: Box<Work<T>>,
    ) -> Result<T, StoreError> {
        let stopped = || SqliteFailure::WriterStopped.into_store_error(context);
        let (reply, outcome) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Command {
            context,
            kind,
            work: Some(work),
            outcome: None,
            reply,
        });
        let sender = self.sender.as_ref().ok_or_else(stopped)?;
        sender.send(job).map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop after the commands already queued; joining
        // means the file is closed (and the WAL checkpointed) when the last handle is gone.
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some((stop, thread)) = self.checkpointer.take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}

/// The thread's loop: wait for a command, take every other queued one, commit them together.
fn serve(conn: Connection, receiver: Receiver<Box<dyn Job>>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = receiver.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, &mut batch);
        for job in batch.drain(..) {
            job.reply();
        }
    }
}

/// The checkpointer's loop: every [`CHECKPOINT_EVERY`], copy what the WAL holds into the
/// database file; once more when told to stop (the writer is gone by then).
fn checkpoint_loop(conn: Connection, stop: Receiver<()>) {
    loop {
        let stopping = !matches!(
            stop.recv_timeout(CHECKPOINT_EVERY),
            Err(RecvTimeoutError::Timeout)
        );
        checkpoint(&conn);
        if stopping {
            return;
        }
    }
}

/// Copies the WAL into the database file (`PASSIVE`: neither the writer nor another process
/// reading the file is waited for; what they still use stays in the WAL for the next one).
/// A WAL with nothing new is a no-op.
fn checkpoint(conn: &Connection) {
    let done = crash_point::during(Point::WalCheckpoint, Duration::from_millis(2), || {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(0)
        })
    });
    if let Err(e) = done {
        // The WAL keeps the data; the next checkpoint (or SQLite's size-triggered one) retries.
        warn!(error = %e, "WAL checkpoint failed");
    }
}

/// Runs `batch` in one transaction, each write in a savepoint; on a failure of the
/// transaction as a whole every command learns that its change was not stored.
fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) {
    if !conn.is_autocommit() {
        // A failed rollback of the previous batch left its transaction open; without this
        // every later BEGIN would fail.
        let _ = conn.execute_batch("ROLLBACK");
    }
    // IMMEDIATE takes the write lock up front: another process (an admin command on the same
    // file) then waits in `busy_timeout` instead of failing the commit half-way.
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let failure = SqliteFailure::Begin(Arc::new(e));
        batch.iter_mut().for_each(|job| job.fail(&failure));
        return;
    }
    let mut failure = None;
    for job in batch.iter_mut() {
        if let Some(failure) = &failure {
            job.fail(failure);
            continue;
        }
        let ran = match job.kind() {
            Kind::Read => {
                job.run(conn);
                Ok(())
            }
            Kind::Write => run_in_savepoint(conn, job.as_mut())
                .map_err(|e| SqliteFailure::Savepoint(Arc::new(e))),
            Kind::CheckedWrite => {
                let before = conn.total_changes();
                if !job.run(conn) && conn.total_changes() != before {
                    Err(SqliteFailure::HalfWritten)
                } else {
                    Ok(())
                }
            }
        };
        if let Err(f) = ran {
            failure = Some(f);
        } else if conn.is_autocommit() {
            // Some errors (disk full, I/O) make SQLite roll back the whole transaction.
            failure = Some(SqliteFailure::RolledBack);
        }
    }
    if failure.is_none() {
        let committed = crash_point::during(Point::GroupCommit, Duration::from_micros(300), || {
            conn.execute_batch("COMMIT")
        });
        if let Err(e) = committed {
            failure = Some(SqliteFailure::Commit(Arc::new(e)));
        }
    }
    if let Some(failure) = failure {
        if !conn.is_autocommit() {
            // Best effort: if even the rollback fails the connection is unusable and the
            // next BEGIN reports it to the next batch.
            let _ = conn.execute_batch("ROLLBACK");
        }
        batch.iter_mut().for_each(|job| job.fail(&failure));
    }
}

/// Runs one write inside `SAVEPOINT command`, undoing it alone if it fails.
fn run_in_savepoint(conn: &Connection, job: &mut dyn Job) -> rusqlite::Result<()> {
    conn.prepare_cached("SAVEPOINT command")?.execute([])?;
    if !job.run(conn) {
        if conn.is_autocommit() {
            // The whole transaction is gone already; the caller notices.
            return Ok(());
        }
        conn.prepare_cached("ROLLBACK TO command")?.execute([])?;
    }
    conn.prepare_cached("RELEASE command")?.execute([])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use nudge_service::ports::StoreError;

    use crate::store::error::sqlite;
    use crate::store::test_support::TempDir;

    fn insert(conn: &rusqlite::Connection, seq: i64) -> Result<(), StoreError> {
        conn.execute("INSERT INTO queue (seq, event) VALUES (?1, '{}')", [seq])
            .map_err(sqlite("test"))?;
        Ok(())
    }

    #[tokio::test]
    async fn a_failing_write_undoes_only_itself_within_a_group_commit() {
        let dir = TempDir::new("writer-savepoint");
        let store = dir.open();
        let writer = &store.writer;

        let (before, failing, bad_sql, after) = tokio::join!(
            writer.write("test", |conn| insert(conn, 1)),
            writer.write("test", |conn| {
                insert(conn, 2)?;
                Err::<(), _>(StoreError::Conflict("u".into()))
            }),
            writer.write("test", |conn| {
                insert(conn, 3)?;
                conn.execute("INSERT INTO no_such_table VALUES (1)", [])
                    .map_err(sqlite("test"))
            }),
            writer.write("test", |conn| insert(conn, 4)),
        );

        assert!(before.is_ok() && after.is_ok());
        assert!(matches!(failing, Err(StoreError::Conflict(_))));
        assert!(matches!(
            bad_sql,
            Err(StoreError::Backend {
                retryable: false,
                ..
            })
        ));
        let seqs: Vec<i64> = writer
            .read("test", |conn| {
                conn.prepare("SELECT seq FROM queue ORDER BY seq")
                    .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                    .map_err(sqlite("test"))
            })
            .await
            .unwrap();
        assert_eq!(seqs, [1, 4]);
    }

    fn queued_seqs(conn: &rusqlite::Connection) -> Result<Vec<i64>, StoreError> {
        conn.prepare("SELECT seq FROM queue ORDER BY seq")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(sqlite("test"))
    }

    /// Runs `commands` as one group commit: a read that holds the writer thread comes first,
    /// so that they all queue up behind it.
    async fn in_one_batch<F: std::future::Future>(
        writer: &super::Writer,
        commands: impl FnOnce() -> F,
    ) -> F::Output {
        let hold = writer.read("hold", |_| {
            std::thread::sleep(std::time::Duration::from_millis(300));
            Ok(())
        });
        let later = async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            commands().await
        };
        let (held, out) = tokio::join!(hold, later);
        held.unwrap();
        out
    }

    #[tokio::test]
    async fn a_checked_write_that_fails_before_writing_fails_alone_without_a_savepoint() {
        let dir = TempDir::new("writer-checked");
        let store = dir.open();
        let writer = &store.writer;

        let (before, conflict, after, savepointed) = in_one_batch(writer, || async {
            tokio::join!(
                writer.write_checked("test", |conn| insert(conn, 1)),
                writer.write_checked("test", |_| {
                    Err::<(), _>(StoreError::Conflict("u".into()))
                }),
                writer.write_checked("test", |conn| insert(conn, 3)),
                writer.write("test", |conn| insert(conn, 4)),
            )
        })
        .await;

        assert!(before.is_ok() && after.is_ok() && savepointed.is_ok());
        assert!(matches!(conflict, Err(StoreError::Conflict(_))));
        assert_eq!(writer.read("test", queued_seqs).await.unwrap(), [1, 3, 4]);
    }

    #[tokio::test]
    async fn a_checked_write_that_fails_half_way_rolls_back_its_whole_commit() {
        let dir = TempDir::new("writer-half-written");
        let store = dir.open();
        let writer = &store.writer;

        let (before, half, after) = in_one_batch(writer, || async {
            tokio::join!(
                writer.write("test", |conn| insert(conn, 1)),
                writer.write_checked("test", |conn| {
                    insert(conn, 2)?;
                    conn.execute("INSERT INTO no_such_table VALUES (1)", [])
                        .map_err(sqlite("test"))
                }),
                writer.write_checked("test", |conn| insert(conn, 3)),
            )
        })
        .await;

        // The failing command keeps its own error; the others of its commit learn that
        // their change was not stored, and may try again.
        assert!(matches!(
            half,
            Err(StoreError::Backend {
                retryable: false,
                ..
            })
        ));
        for sibling in [before, after] {
            assert!(
                matches!(
                    sibling,
                    Err(StoreError::Backend {
                        retryable: true,
                        ..
                    })
                ),
                "{sibling:?}"
            );
        }
        assert!(writer.read("test", queued_seqs).await.unwrap().is_empty());

        // The next commit goes through.
        writer
            .write_checked("test", |conn| insert(conn, 5))
            .await
            .unwrap();
        assert_eq!(writer.read("test", queued_seqs).await.unwrap(), [5]);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_writer_thread_yields_to_the_http_api() {
        let dir = TempDir::new("writer-priority");
        let store = dir.open();
        // SAFETY: sched_getscheduler reads the calling thread's policy.
        let policy = || unsafe { libc::sched_getscheduler(0) };
        assert_ne!(policy(), libc::SCHED_IDLE);

        let writers = store
            .writer
            .read("test", move |_| Ok(policy()))
            .await
            .unwrap();

        assert_eq!(writers, libc::SCHED_IDLE);
    }

    #[tokio::test]
    async fn a_write_reaches_the_database_file_soon_after_the_last_command() {
        let dir = TempDir::new("writer-checkpoint");
        let store = dir.open();
        store
            .writer
            .write("test", |conn| insert(conn, 7))
            .await
            .unwrap();

        // The database file alone (a copy without its WAL) has the row once the writer, idle
        // since, has checkpointed.
        let copy = TempDir::new("writer-checkpoint-copy");
        let deadline = std::time::Instant::now() + super::CHECKPOINT_EVERY * 20;
        loop {
            std::fs::copy(dir.db(), copy.db()).unwrap();
            let conn = rusqlite::Connection::open(copy.db()).unwrap();
            // Before the first checkpoint the file lacks even the tables.
            let rows: i64 = conn
                .query_row("SELECT COUNT(*) FROM queue WHERE seq = 7", [], |r| r.get(0))
                .unwrap_or(0);
            drop(conn);
            if rows == 1 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the write is still only in the WAL"
            );
            tokio::time::sleep(super::CHECKPOINT_EVERY / 5).await;
        }
    }
}
