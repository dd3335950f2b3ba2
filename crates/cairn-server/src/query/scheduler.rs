//! Fair scheduling of storage reads: a bounded set of query workers fed by
//! one FIFO queue per tenant, served round-robin.
//!
//! Every read that scans storage (query, query_range, series, labels, label
//! values, exemplars, remote read) runs here, as Mimir's query-scheduler
//! does it (`pkg/scheduler/queue`): requests wait in their tenant's queue;
//! a free worker takes the next request from the next tenant in rotation, so
//! a tenant with a hundred queued queries and a tenant with one take turns.
//! A tenant with `max_outstanding_per_tenant` requests already waiting gets
//! 429 `too many outstanding requests` (Mimir's
//! `-query-scheduler.max-outstanding-requests-per-tenant`, default 100).
//!
//! Per-tenant concurrency: a tenant runs at most its `max_query_parallelism`
//! limit of queries at once, and never more than all workers but one, so a
//! tenant flooding heavy queries always leaves a worker free for the next
//! tenant's dashboard query, which then starts at once instead of waiting for
//! a heavy query to finish.
//!
//! Why ingestion is never starved: evaluation runs on these dedicated
//! worker threads (`querier.max_concurrent` of them; by default one more than
//! the CPU cores), not on Tokio's blocking pool, where the push path decodes
//! and appends. However many queries arrive, at most that many threads
//! evaluate (plus at most 4 helper threads each for a very large query, see
//! `cairn-promql`'s `parallel`); the rest wait in queues that cost no CPU, so
//! the push path's threads always get their share of the cores.
//!
//! A request whose client went away while it waited is dropped when a worker
//! reaches it; one already running is stopped by the engine's cancel flag.
//! Time spent waiting is observed in `cairn_query_queue_duration_seconds`.
//!
//! Known-cheap queries run inline. Handing a read to a worker and its
//! answer back costs two thread wake-ups (futex, context switches, and
//! Tokio waking a second worker to look for work), which was a third of a
//! one-host dashboard query's server time. A query whose previous
//! evaluation (same tenant, expression and range shape, see
//! [`QueryScheduler::run_learned`]) took at most [`INLINE_MAX`] runs on the
//! request's own thread, but only when a worker would have started it at
//! once anyway: nothing queued for any tenant, a worker slot free, the
//! tenant under its limit. It takes that slot while it runs, so the limits
//! above hold unchanged. Such a query is not cancelled when its client goes
//! away (it is over within about a millisecond). One that turns out slower
//! is forgotten, so its next run goes through the queue again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::app::AppState;
use crate::error::ApiError;
use crate::federation::ReadTarget;
use crate::metrics::TenantLabels;

/// Mimir's answer when a tenant's queue is full.
pub const TOO_MANY_OUTSTANDING: &str = "too many outstanding requests";

#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// Worker threads, i.e. reads evaluated at once across all tenants.
    pub max_concurrent: usize,
    /// Requests one tenant may have waiting; more are refused with 429.
    pub max_outstanding_per_tenant: usize,
}

impl SchedulerOptions {
    /// One more worker than CPU cores (at least 2): CPU-bound evaluation
    /// gains nothing from more threads than cores, and the extra worker is
    /// the one a flooding tenant may not take.
    pub fn default_max_concurrent() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get() + 1)
    }
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            max_concurrent: SchedulerOptions::default_max_concurrent(),
            max_outstanding_per_tenant: 100,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The tenant's queue is full (429).
    #[error("{TOO_MANY_OUTSTANDING} (err-cairn-too-many-outstanding-requests)")]
    TooManyOutstanding,
    /// The job panicked or the scheduler shut down (500).
    #[error("query worker failed")]
    Failed,
}

impl From<ScheduleError> for ApiError {
    fn from(err: ScheduleError) -> ApiError {
        match err {
            ScheduleError::TooManyOutstanding => ApiError {
                error_type: "too_many_requests",
                message: err.to_string(),
            },
            ScheduleError::Failed => ApiError::internal(err.to_string()),
        }
    }
}

/// The concurrency limit of a read: its tenant's `max_query_parallelism`;
/// for a federated read the smallest positive one among its tenants (Mimir's
/// `SmallestPositiveIntPerTenant`). 0 means no per-tenant limit (the
/// all-workers-but-one rule still holds).
fn concurrency_limit(state: &AppState, target: &ReadTarget) -> usize {
    target
        .tenants()
        .map(|tenant| state.overrides.for_tenant(tenant).max_query_parallelism)
        .filter(|limit| *limit > 0)
        .min()
        .unwrap_or(usize::MAX)
}

/// Runs a storage read for `target` on the query workers, in the queue of
/// its tenant (or tenant list).
pub(crate) async fn run_read<T, F>(
    state: &AppState,
    target: ReadTarget,
    read: F,
) -> Result<T, ScheduleError>
where
    T: Send + 'static,
    F: FnOnce(&ReadTarget) -> T + Send + 'static,
{
    run_read_learned(state, target, None, read).await
}

/// [`run_read`] for a read whose cost is remembered under `cost_key` (see
/// [`QueryScheduler::run_learned`]); the key should cover the tenant.
pub(crate) async fn run_read_learned<T, F>(
    state: &AppState,
    target: ReadTarget,
    cost_key: Option<u64>,
    read: F,
) -> Result<T, ScheduleError>
where
    T: Send + 'static,
    F: FnOnce(&ReadTarget) -> T + Send + 'static,
{
    let key = target.queue_key();
    let limit = concurrency_limit(state, &target);
    state
        .scheduler
        .run_learned(&key, limit, cost_key, move || read(&target))
        .await
}

/// The longest evaluation after which the same query may next run inline
/// (module doc).
pub const INLINE_MAX: Duration = Duration::from_millis(1);

/// Most queries remembered as cheap; the set is emptied when full (as the
/// parse cache is).
const CHEAP_CAPACITY: usize = 4096;

/// One queued read.
struct Job {
    enqueued: Instant,
    /// Raised when the waiting request is dropped (client gone).
    abandoned: Arc<AtomicBool>,
    run: Box<dyn FnOnce() + Send>,
}

impl Job {
    fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct TenantQueue {
    pending: VecDeque<Job>,
    running: usize,
    /// The tenant's concurrency limit, as of its latest request.
    limit: usize,
}

/// The queues; a tenant is in `rotation` exactly when it has pending jobs.
struct Queues {
    tenants: HashMap<String, TenantQueue>,
    rotation: VecDeque<String>,
    workers: usize,
    /// Jobs running, on the workers or inline; at most `workers`.
    running: usize,
    max_outstanding: usize,
    closed: bool,
}

impl Queues {
    fn new(workers: usize, max_outstanding: usize) -> Queues {
        Queues {
            tenants: HashMap::new(),
            rotation: VecDeque::new(),
            workers,
            running: 0,
            max_outstanding,
            closed: false,
        }
    }

    /// The tenant's limit clamped to all workers but one (so another tenant
    /// can always start at once).
    fn clamp_limit(&self, limit: usize) -> usize {
        let reserve = usize::from(self.workers > 1);
        limit.clamp(1, self.workers - reserve)
    }

    /// Takes a worker slot for a job run inline, if a worker would start it
    /// at once: nothing queued, a slot free, the tenant under its limit.
    fn start_inline(&mut self, tenant: &str, limit: usize) -> bool {
        if self.closed || !self.rotation.is_empty() || self.running >= self.workers {
            return false;
        }
        let limit = self.clamp_limit(limit);
        let queue = match self.tenants.get_mut(tenant) {
            Some(queue) => queue,
            None => self.tenants.entry(tenant.to_string()).or_default(),
        };
        queue.limit = limit;
        if queue.running >= queue.limit {
            return false;
        }
        queue.running += 1;
        self.running += 1;
        true
    }

    /// Adds a job to the tenant's FIFO, or refuses it when the FIFO is full.
    fn push(&mut self, tenant: &str, limit: usize, job: Job) -> Result<(), ScheduleError> {
        // All workers but one, so another tenant can always start at once.
        let limit = self.clamp_limit(limit);
        let queue = self.tenants.entry(tenant.to_string()).or_default();
        if queue.pending.len() >= self.max_outstanding {
            // Waiting requests whose clients left do not count.
            queue.pending.retain(|job| !job.is_abandoned());
            if queue.pending.len() >= self.max_outstanding {
                return Err(ScheduleError::TooManyOutstanding);
            }
        }
        queue.limit = limit;
        let was_idle = queue.pending.is_empty();
        queue.pending.push_back(job);
        if was_idle {
            self.rotation.push_back(tenant.to_string());
        }
        Ok(())
    }

    /// The next job to run: from the first tenant in rotation that has one
    /// and is under its limit; that tenant then goes to the back.
    fn pop(&mut self) -> Option<(String, Job)> {
        // Every slot may be taken with a worker idle: jobs run inline count.
        if self.running >= self.workers {
            return None;
        }
        for _ in 0..self.rotation.len() {
            let tenant = self.rotation.pop_front()?;
            let Some(queue) = self.tenants.get_mut(&tenant) else {
                continue;
            };
            while queue.pending.front().is_some_and(Job::is_abandoned) {
                queue.pending.pop_front();
            }
            if queue.pending.is_empty() {
                if queue.running == 0 {
                    self.tenants.remove(&tenant);
                }
                continue;
            }
            if queue.running >= queue.limit {
                self.rotation.push_back(tenant);
                continue;
            }
            let job = queue.pending.pop_front()?;
            queue.running += 1;
            self.running += 1;
            if !queue.pending.is_empty() {
                self.rotation.push_back(tenant.clone());
            }
            return Some((tenant, job));
        }
        None
    }

    /// Marks one of the tenant's jobs finished.
    fn done(&mut self, tenant: &str) {
        self.running = self.running.saturating_sub(1);
        if let Some(queue) = self.tenants.get_mut(tenant) {
            queue.running = queue.running.saturating_sub(1);
            if queue.running == 0 && queue.pending.is_empty() {
                self.tenants.remove(tenant);
            }
        }
    }
}

struct Shared {
    queues: Mutex<Queues>,
    work: Condvar,
    /// Cost keys of queries whose latest evaluation took at most
    /// `inline_max`.
    cheap: Mutex<HashSet<u64>>,
    /// [`INLINE_MAX`] (longer in tests, which cannot time a job that short
    /// on a loaded machine).
    inline_max: Duration,
    queue_duration: Histogram,
    rejected: Family<TenantLabels, Counter>,
}

/// The query workers and their queues. Dropping it stops the workers once
/// the jobs already queued have run.
pub struct QueryScheduler {
    shared: Arc<Shared>,
}

impl QueryScheduler {
    /// Starts `options.max_concurrent` worker threads.
    pub fn new(options: &SchedulerOptions) -> QueryScheduler {
        QueryScheduler::start(options, INLINE_MAX)
    }

    fn start(options: &SchedulerOptions, inline_max: Duration) -> QueryScheduler {
        let workers = options.max_concurrent.max(1);
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::new(
                workers,
                options.max_outstanding_per_tenant.max(1),
            )),
            work: Condvar::new(),
            cheap: Mutex::new(HashSet::new()),
            inline_max,
            queue_duration: Histogram::new(exponential_buckets(0.001, 4.0, 9)),
            rejected: Family::default(),
        });
        for i in 0..workers {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("cairn-query-{i}"))
                .spawn(move || work(&shared))
                .expect("spawn a query worker thread");
        }
        QueryScheduler { shared }
    }

    /// Registers the scheduler's metrics.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "cairn_query_queue_duration_seconds",
            "Time reads waited in their tenant's queue before a query worker took them",
            self.shared.queue_duration.clone(),
        );
        registry.register(
            "cairn_query_queue_rejected_requests",
            "Reads refused with 429 because the tenant's queue was full",
            self.shared.rejected.clone(),
        );
    }

    /// Runs `job` on a query worker when its turn comes in `tenant`'s queue;
    /// `limit` is the tenant's concurrency limit. If the returned future is
    /// dropped while the job waits, the job is skipped.
    pub async fn run<T, F>(&self, tenant: &str, limit: usize, job: F) -> Result<T, ScheduleError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.run_learned(tenant, limit, None, job).await
    }

    /// [`QueryScheduler::run`] for a job whose wall time is remembered under
    /// `cost_key` (when given): if its previous run took at most
    /// [`INLINE_MAX`], it runs inline on the calling thread when a worker
    /// would have started it at once (module doc).
    pub async fn run_learned<T, F>(
        &self,
        tenant: &str,
        limit: usize,
        cost_key: Option<u64>,
        job: F,
    ) -> Result<T, ScheduleError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let inline = cost_key.is_some_and(|key| self.shared.cheap.lock().contains(&key))
            && self.shared.queues.lock().start_inline(tenant, limit);
        if inline {
            let _slot = Slot {
                shared: Arc::clone(&self.shared),
                tenant: tenant.to_string(),
            };
            self.shared.queue_duration.observe(0.0);
            let started = Instant::now();
            // As on a worker: a panicking job answers 500.
            let result = std::panic::catch_unwind(AssertUnwindSafe(job));
            learn(&self.shared, cost_key, started.elapsed());
            return result.map_err(|_| ScheduleError::Failed);
        }
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let abandoned = Arc::new(AtomicBool::new(false));
        let _abandon_on_drop = AbandonOnDrop(Arc::clone(&abandoned));
        let shared = Arc::clone(&self.shared);
        let owner = tenant.to_string();
        let job = Job {
            enqueued: Instant::now(),
            abandoned,
            run: Box::new(move || {
                // The worker that popped the job took its slot (a job
                // dropped unrun never did).
                let slot = Slot {
                    shared,
                    tenant: owner,
                };
                let started = Instant::now();
                let result = job();
                learn(&slot.shared, cost_key, started.elapsed());
                // The slot is free before the answer is: the request that
                // follows this one on the connection finds it free.
                drop(slot);
                let _ = sender.send(result);
            }),
        };
        {
            let mut queues = self.shared.queues.lock();
            if queues.closed {
                return Err(ScheduleError::Failed);
            }
            if let Err(err) = queues.push(tenant, limit, job) {
                drop(queues);
                self.shared
                    .rejected
                    .get_or_create(&TenantLabels {
                        tenant: tenant.to_string(),
                    })
                    .inc();
                return Err(err);
            }
        }
        self.shared.work.notify_one();
        receiver.await.map_err(|_| ScheduleError::Failed)
    }
}

impl Drop for QueryScheduler {
    fn drop(&mut self) {
        self.shared.queues.lock().closed = true;
        self.shared.work.notify_all();
    }
}

/// Remembers whether the job under `cost_key` was cheap enough to run
/// inline next time.
fn learn(shared: &Shared, cost_key: Option<u64>, elapsed: Duration) {
    let Some(key) = cost_key else {
        return;
    };
    let mut cheap = shared.cheap.lock();
    if elapsed <= shared.inline_max {
        if cheap.len() >= CHEAP_CAPACITY {
            cheap.clear();
        }
        cheap.insert(key);
    } else {
        cheap.remove(&key);
    }
}

/// The worker slot of a running job (on a worker or inline), given back
/// when it is dropped: when the job ends, or unwinds.
struct Slot {
    shared: Arc<Shared>,
    tenant: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let pending = {
            let mut queues = self.shared.queues.lock();
            queues.done(&self.tenant);
            !queues.rotation.is_empty()
        };
        // A tenant held back by its limit, or a job queued while every slot
        // was taken, may run now; wake a worker in case this thread is about
        // to take something else. With nothing queued there is nothing to
        // hand over: waking a worker only to see it sleep again cost every
        // query two context switches.
        if pending {
            self.shared.work.notify_one();
        }
    }
}

/// Raises the abandoned flag when the waiting future is dropped; after the
/// job ran, the flag is read by no one.
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// One worker: takes jobs in turn until the scheduler closes and is drained.
fn work(shared: &Shared) {
    loop {
        let job = {
            let mut queues = shared.queues.lock();
            loop {
                if let Some((_, job)) = queues.pop() {
                    break job;
                }
                if queues.closed && queues.rotation.is_empty() {
                    return;
                }
                shared.work.wait(&mut queues);
            }
        };
        shared
            .queue_duration
            .observe(job.enqueued.elapsed().as_secs_f64());
        // A panicking job drops its sender, so its request answers 500, and
        // its slot; the worker lives on.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job.run));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(log: &Arc<Mutex<Vec<String>>>, name: &str) -> Job {
        let log = Arc::clone(log);
        let name = name.to_string();
        Job {
            enqueued: Instant::now(),
            abandoned: Arc::new(AtomicBool::new(false)),
            run: Box::new(move || log.lock().push(name)),
        }
    }

    /// Pops and runs everything runnable, finishing each job at once.
    fn drain(queues: &mut Queues) {
        while let Some((tenant, job)) = queues.pop() {
            (job.run)();
            queues.done(&tenant);
        }
    }

    #[test]
    fn tenants_are_served_round_robin_each_in_fifo_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut queues = Queues::new(4, 100);
        for i in 0..4 {
            queues.push("a", 10, job(&log, &format!("a{i}"))).unwrap();
        }
        queues.push("b", 10, job(&log, "b0")).unwrap();
        queues.push("b", 10, job(&log, "b1")).unwrap();
        queues.push("c", 10, job(&log, "c0")).unwrap();
        drain(&mut queues);
        assert_eq!(
            *log.lock(),
            ["a0", "b0", "c0", "a1", "b1", "a2", "a3"],
            "one job per tenant per turn"
        );
        assert!(queues.tenants.is_empty() && queues.rotation.is_empty());
    }

    #[test]
    fn a_tenant_at_its_limit_is_skipped_until_a_job_finishes() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut queues = Queues::new(8, 100);
        for i in 0..3 {
            queues.push("a", 2, job(&log, &format!("a{i}"))).unwrap();
        }
        queues.push("b", 2, job(&log, "b0")).unwrap();
        let (t1, _) = queues.pop().unwrap();
        let (t2, _) = queues.pop().unwrap();
        let (t3, _) = queues.pop().unwrap();
        assert_eq!([t1.as_str(), t2.as_str(), t3.as_str()], ["a", "b", "a"]);
        // a runs 2 = its limit: its third job waits though workers are free.
        assert!(queues.pop().is_none());
        queues.done("a");
        assert_eq!(queues.pop().unwrap().0, "a");
    }

    #[test]
    fn one_tenant_never_takes_every_worker() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut queues = Queues::new(3, 100);
        for i in 0..5 {
            queues.push("a", 100, job(&log, &format!("a{i}"))).unwrap();
        }
        assert!(queues.pop().is_some());
        assert!(queues.pop().is_some());
        assert!(queues.pop().is_none(), "the third worker stays for others");
        queues.push("b", 100, job(&log, "b0")).unwrap();
        assert_eq!(queues.pop().unwrap().0, "b");
        // A single worker is never reserved.
        let mut single = Queues::new(1, 100);
        single.push("a", 100, job(&log, "x")).unwrap();
        assert!(single.pop().is_some());
    }

    #[test]
    fn a_full_queue_refuses_and_abandoned_jobs_are_skipped() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut queues = Queues::new(2, 2);
        let first = job(&log, "gone");
        let flag = Arc::clone(&first.abandoned);
        queues.push("a", 1, first).unwrap();
        queues.push("a", 1, job(&log, "a1")).unwrap();
        assert!(matches!(
            queues.push("a", 1, job(&log, "a2")),
            Err(ScheduleError::TooManyOutstanding)
        ));
        // Other tenants have their own queues.
        queues.push("b", 1, job(&log, "b0")).unwrap();
        flag.store(true, Ordering::Relaxed);
        // The abandoned job no longer counts toward the limit.
        queues.push("a", 1, job(&log, "a2")).unwrap();
        drain(&mut queues);
        assert_eq!(*log.lock(), ["a1", "b0", "a2"]);
    }

    #[test]
    fn inline_jobs_take_a_slot_only_when_a_worker_would_start_them_at_once() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut queues = Queues::new(3, 100);
        // Tenant limit 1: a second inline job of the same tenant waits.
        assert!(queues.start_inline("a", 1));
        assert!(!queues.start_inline("a", 1));
        assert!(queues.start_inline("b", 5));
        // b is clamped to all workers but one, and the last slot is free.
        assert!(queues.start_inline("c", 5));
        assert!(!queues.start_inline("d", 5), "every slot is taken");
        // A queued job waits for a slot although a worker thread is idle.
        queues.push("d", 5, job(&log, "d0")).unwrap();
        assert!(queues.pop().is_none());
        queues.done("c");
        // Something is queued: nothing may overtake it inline.
        assert!(!queues.start_inline("e", 5));
        assert_eq!(queues.pop().unwrap().0, "d");
        queues.done("d");
        queues.done("a");
        queues.done("b");
        assert_eq!(queues.running, 0);
        assert!(queues.tenants.is_empty() && queues.rotation.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cheap_query_runs_inline_next_time_and_a_slow_one_is_forgotten() {
        let inline_max = Duration::from_millis(200);
        let options = SchedulerOptions {
            max_concurrent: 2,
            max_outstanding_per_tenant: 10,
        };
        let scheduler = QueryScheduler::start(&options, inline_max);
        let on_worker = || {
            std::thread::current()
                .name()
                .is_some_and(|name| name.starts_with("cairn-query-"))
        };
        // Unknown cost: on a worker, then remembered as cheap.
        assert!(scheduler
            .run_learned("a", 1, Some(1), on_worker)
            .await
            .unwrap());
        assert!(!scheduler
            .run_learned("a", 1, Some(1), on_worker)
            .await
            .unwrap());
        // Without a key, always on a worker.
        assert!(scheduler.run("a", 1, on_worker).await.unwrap());
        // A run slower than the limit is forgotten.
        let slow = move || {
            std::thread::sleep(inline_max * 2);
            on_worker()
        };
        assert!(!scheduler.run_learned("a", 1, Some(1), slow).await.unwrap());
        assert!(scheduler
            .run_learned("a", 1, Some(1), on_worker)
            .await
            .unwrap());
        // A panic inline answers an error and gives the slot back.
        let failed = scheduler
            .run_learned("a", 1, Some(1), || -> u8 { panic!("boom") })
            .await;
        assert!(matches!(failed, Err(ScheduleError::Failed)));
        assert_eq!(scheduler.shared.queues.lock().running, 0);
        assert_eq!(
            scheduler.run_learned("a", 1, Some(1), || 7).await.unwrap(),
            7
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_on_the_workers_and_panics_become_errors() {
        let scheduler = QueryScheduler::new(&SchedulerOptions {
            max_concurrent: 2,
            max_outstanding_per_tenant: 10,
        });
        let name = scheduler
            .run("a", 1, || std::thread::current().name().map(str::to_string))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("cairn-query-"));
        let failed = scheduler.run("a", 1, || -> u8 { panic!("boom") }).await;
        assert!(matches!(failed, Err(ScheduleError::Failed)));
        assert_eq!(scheduler.run("a", 1, || 7).await.unwrap(), 7);
    }
}
