"""One `overture worker` process: an Engine on the shared journal, fed by the run queue.

Three things keep runs moving when workers come and go:
- the queue job ("drive run X") gives a fast start: a worker is woken by NOTIFY and claims the
  job with SKIP LOCKED, then drives the run until it finishes or pauses (approval, far timer);
  with `WorkerOptions.line`, of the workers with a free job slot only the one whose turn it is
  in their line (`line`) answers a NOTIFY, so one job wakes one worker;
- the run's lease in the journal (renewed by the engine at a third of `lease_ttl_s`) says who
  drives it; every worker's engine scheduler takes over runs whose lease ran out, wakes due
  timers and runs another process approved or cancelled;
- a sweeper gives jobs of workers that stopped heartbeating back to the queue, so the queue's
  own bookkeeping does not keep them `doing` forever (the run is already safe by its lease).

Shutdown (SIGTERM/SIGINT) drains: no new jobs, running ones finish (up to `drain_timeout_s`),
then the engine drains what its scheduler took up; whatever is left is taken over elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg.errors
from procrastinate import App, PsycopgConnector
from procrastinate import worker as procrastinate_worker
from procrastinate.connector import BaseConnector
from procrastinate.jobs import Job
from procrastinate.manager import JobManager, NotificationCallback

from runtime.active_run import TakenRun
from runtime.engine import Engine
from runtime.errors import InvalidRunState, RunNotFound
from runtime.invocation import Invoker
from runtime.invokers import build_invoker
from runtime.journal import Journal
from runtime.records import Event
from runtime.routing import Router
from runtime.secrets import SecretStore
from runtime.workers.handoff import HandoffLink
from runtime.workers.line import Line
from runtime.workers.queue import QUEUE_NAME, TASK_NAME, QueueUnavailable, conninfo, ensure_schema
from workflow.catalog import Catalog
from workflow.loader import load_catalog

log = logging.getLogger("overture.workers")


@dataclass
class WorkerOptions:
    """How a worker runs; `overture worker start` maps its options onto these."""

    database_url: str
    catalogs: list[str] = field(default_factory=list)
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    jobs: int = 16
    """Runs this worker drives at once from the queue."""
    concurrency: int = 64
    """Action calls in flight at once across those runs (the engine's limit)."""
    lease_ttl_s: float = 30.0
    """A run whose worker stopped renewing is taken over this long after the last renewal."""
    poll_interval_s: float = 2.0
    """How often the engine looks for orphaned runs, due timers and other processes' decisions,
    and (as a fallback for a lost NOTIFY) the queue for jobs."""
    drain_timeout_s: float = 60.0
    """On SIGTERM, how long running runs may take to finish before the worker leaves them."""
    router: Literal["learned", "default"] = "learned"
    """`learned`: steps with alternatives are routed by the optimizer's trained models once there
    are some in `models_dir`, as `overture serve` does; `default`: always the step's own action."""
    models_dir: str | None = None
    """Where `overture optimize train` and the API's `/v1/optimizer/train` store the models
    (default `$OVERTURE_DATA_DIR/models`): a shared folder, or a copy, on each worker's machine."""
    models_poll_s: float = 30.0
    """How often to look for a newer model version, so a retraining reaches running workers."""
    line: bool = field(default_factory=lambda: os.environ.get("OVERTURE_WORKER_LINE", "") in ("1", "true"))
    """Answer a job's NOTIFY only on this worker's turn in the line of workers with a free slot
    (`runtime.workers.line`: one job wakes one worker, three fetches per job whatever the number
    of workers); False (the default; `OVERTURE_WORKER_LINE=1` turns it on): on every NOTIFY, as
    every Procrastinate worker does (every idle worker fetches, one gets the job). Off by
    default: on 2 shared CPUs the line cost batch throughput (the taker is not always the worker
    whose event loop is free; see docs/architecture-workers.md)."""


class _LineConsumer(procrastinate_worker.Worker):
    """Procrastinate's worker, which a job's NOTIFY wakes only on its turn in the line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line: Line | None = None
        self.wakeups = 0
        """Wake-ups to fetch (a NOTIFY on its turn, a turn's start), counted so that a fetch
        that found nothing knows whether one came while it ran."""

    async def _handle_notification(self, *, channel: str, notification: Any) -> None:
        if notification["type"] == "job_inserted":
            if self.line is not None and not self.line.taker:
                return  # the worker whose turn it is fetches it
            self.wakeups += 1
        await super()._handle_notification(channel=channel, notification=notification)

    def wake(self) -> None:
        """Fetch now (its turn began)."""
        self.wakeups += 1
        self._new_job_event.set()


def _reason(exc: BaseException) -> str:
    """An error in one line, with the database's reason Procrastinate's own exceptions wrap."""
    return " ".join(str(exc.__cause__ or exc).split()) or type(exc).__name__


class _LocalWrites:
    """The order in which this process's engine last wrote to each run (its journal's events),
    to tell whether a take's read of a run may be older than a write of ours.

    The take reads the run in its statement's snapshot, while this worker's own driver may be
    writing to it (a job for a run this worker drives: a poke, a job swept back from a worker
    thought dead) and may end before the job's task starts. Handed to the engine, such a read
    had a new driver call again a step the first one had completed (its row still `running` in
    the read)."""

    KEEP = 10_000
    """Runs remembered: a take spans milliseconds, not the writes to ten thousand other runs."""

    def __init__(self) -> None:
        self._count = 0
        self._last: dict[str, int] = {}

    def noted(self, event: Event) -> None:
        self._count += 1
        self._last.pop(event.run_id, None)  # re-inserted: the dict stays in the order of writes
        self._last[event.run_id] = self._count
        if len(self._last) > self.KEEP:
            del self._last[next(iter(self._last))]

    def mark(self) -> int:
        return self._count

    def since(self, run_id: str, mark: int) -> bool:
        """Whether this process wrote to the run after `mark`."""
        return self._last.get(run_id, 0) > mark


class _TakingJobManager(JobManager):
    """Procrastinate's job manager, whose fetch also takes the job's run over (`handoff.take`);
    what the take read of the run waits in `taken` for the job's task to hand to the engine
    (`claimed`), unless this process wrote to the run since the take began.

    With a `line`, a fetch goes to the database on the worker's turn, and otherwise only as the
    poll's fallback (at most every half `poll_s`): Procrastinate's loop fetches again after each
    job it got, and a worker whose turn has passed leaves the next job to the next worker."""

    def __init__(
        self,
        connector: BaseConnector,
        journal: Journal,
        owner: str,
        ttl: float,
        *,
        slots: int = 1,
        poll_s: float = 2.0,
    ) -> None:
        super().__init__(connector)
        self.link = HandoffLink(journal)
        self.owner = owner
        self.ttl = ttl
        self.taken: dict[str, tuple[TakenRun, int]] = {}
        """Per run, what a take read and the `writes` mark from before it."""
        self.writes = _LocalWrites()
        journal.add_listener(self.writes.noted)
        self.slots = slots
        self.poll_s = poll_s
        self.running = 0
        """Jobs fetched whose task has not ended (the line is for a worker with a slot free)."""
        self.consumer: _LineConsumer | None = None
        self.fetches = 0
        """Fetches that went to the database (for tests and logs)."""
        self._fetched_at = float("-inf")
        self._took = False
        """The taker took a job this turn (its turn passes at its next fetch that finds none)."""

    @property
    def line(self) -> Line | None:
        return self.consumer.line if self.consumer is not None else None

    # Procrastinate stops the whole worker when one of its side tasks (the heartbeat, the
    # listener) raises: a moment without the database ended the process and every run it drove,
    # which the other workers then took over a lease later, or nobody did when it was the last.
    # Both keep going instead; the leases and the stalled-job sweep cover the gap

    async def update_heartbeat(self, worker_id: int) -> None:
        try:
            await super().update_heartbeat(worker_id)
        except Exception as exc:  # a beat missed costs nothing; a worker away long is swept
            log.warning("could not record this worker's heartbeat (%s); beating on", _reason(exc))

    async def listen_for_jobs(
        self, *, on_notification: NotificationCallback, queues: Iterable[str] | None = None
    ) -> None:
        while True:
            try:
                await super().listen_for_jobs(on_notification=on_notification, queues=queues)
                return
            except Exception as exc:  # the poll fetches meanwhile, as for a lost NOTIFY
                log.warning(
                    "stopped listening for jobs (%s); fetching every %gs, listening again then",
                    _reason(exc),
                    self.poll_s,
                )
                await asyncio.sleep(self.poll_s)

    def job_ended(self) -> None:
        self.running -= 1
        line = self.line
        if line is not None and self.running < self.slots:
            line.join()

    async def fetch_job(self, queues: Iterable[str] | None, worker_id: int) -> Job | None:
        line, consumer = self.line, self.consumer
        now = time.monotonic()
        if line is not None and not line.taker and now - self._fetched_at < self.poll_s / 2:
            return None  # not its turn, and not the poll's either
        wakeups = consumer.wakeups if consumer is not None else 0
        self._fetched_at = now
        self.fetches += 1
        mark = self.writes.mark()
        try:
            taken = await self.link.take(
                queues=list(queues) if queues is not None else None,
                worker_id=worker_id,
                owner=self.owner,
                ttl=self.ttl,
            )
        except QueueUnavailable as exc:
            # the database is away a moment: the next NOTIFY or poll fetches again, and the
            # runs are safe by their leases meanwhile
            log.warning("%s", exc)
            return None
        except psycopg.errors.ForeignKeyViolation:
            if consumer is None:
                raise
            # the job names this worker's row in Procrastinate's books, which another worker
            # removed, taking it for stalled (its prune at start: this one was away longer than
            # its TTL). The fetch failed and took nothing; the worker crashed on it and left the
            # queue unserved. Back on the books under a new id, it fetches again
            consumer.worker_id = await self.register_worker()
            log.warning(
                "this worker was taken off the queue's books as stalled; back on as worker %d",
                consumer.worker_id,
            )
            asyncio.get_running_loop().call_soon(consumer.wake)
            return None
        if taken is None:
            if line is not None and line.taker and self._took:
                # the queue is drained: the turn goes to the next worker in line
                self._took = False
                line.taken(rejoin=self.running < self.slots)
            if consumer is not None and consumer.wakeups != wakeups:
                # a job announced while this fetch ran may have been committed after it looked;
                # Procrastinate's loop forgets that wake-up as the fetch returns: fetch again
                asyncio.get_running_loop().call_soon(consumer.wake)
            return None
        self.running += 1
        if line is not None and line.taker:
            # the taker drains the queue while it has room (Procrastinate's loop fetches again
            # at once): handing the turn on after each job serialized a burst through the
            # workers' busy event loops
            self._took = self.running < self.slots
            if not self._took:
                line.taken(rejoin=False)
        if taken.run is not None:  # the lease came along (else another worker drives the run)
            self.taken[taken.run.id] = (TakenRun(taken.run, taken.steps, taken.started_attempts), mark)
        return taken.job

    def claimed(self, run_id: str) -> TakenRun | None:
        """What the job's take read of the run, for the engine to start from; None when the take
        did not bring the run, or when this process wrote to it since the take began (the engine
        then claims it and reads it afresh: the lease is this worker's either way)."""
        held = self.taken.pop(run_id, None)
        if held is None or self.writes.since(run_id, held[1]):
            return None
        return held[0]


@dataclass
class WorkerStats:
    jobs: int = 0
    settled: int = 0
    skipped: int = 0
    started_at: float = field(default_factory=time.time)


class Worker:
    """`await Worker(options).run()` until `stop()` (or SIGTERM/SIGINT with `install_signals`)."""

    def __init__(
        self,
        options: WorkerOptions,
        *,
        catalog: Catalog | None = None,
        invoker_overrides: Mapping[str, Invoker] | None = None,
    ) -> None:
        self.options = options
        self.catalog = catalog if catalog is not None else load_catalog(*options.catalogs)
        self._overrides = invoker_overrides
        self.stats = WorkerStats()
        self.engine: Engine | None = None
        self._consumer: procrastinate_worker.Worker | None = None
        self._stop = asyncio.Event()
        self._taking: _TakingJobManager | None = None

    def stop(self) -> None:
        """Begin a graceful shutdown (safe to call from a signal handler)."""
        self._stop.set()
        if self._consumer is not None:
            self._consumer.stop()

    async def run(self, *, install_signals: bool = False, ready: Callable[[], None] | None = None) -> int:
        """Serve until stopped; returns how many runs were still driven when the drain ended."""
        opts = self.options
        ensure_schema(opts.database_url)
        secrets = SecretStore.from_env()
        journal = Journal.open(opts.database_url, redact=secrets.redact)
        invoker = build_invoker(self.catalog, secrets, overrides=self._overrides)
        engine = Engine(
            self.catalog,
            journal,
            invoker,
            concurrency=opts.concurrency,
            secrets=secrets,
            worker_id=opts.worker_id,
            poll_interval_s=opts.poll_interval_s,
            lease_ttl_s=opts.lease_ttl_s,
            router=self._learned_router(),
        )
        self.engine = engine
        app = App(
            connector=PsycopgConnector(
                conninfo=conninfo(opts.database_url), min_size=1, max_size=max(4, opts.jobs // 2 + 2)
            )
        )
        taking = _TakingJobManager(
            app.connector,
            journal,
            opts.worker_id,
            opts.lease_ttl_s,
            slots=opts.jobs,
            poll_s=opts.poll_interval_s,
        )
        app.job_manager = taking
        self._taking = taking

        @app.task(name=TASK_NAME, queue=QUEUE_NAME)
        async def drive_run(run_id: str) -> None:
            try:
                # `claimed` is called right before the engine starts: nothing runs in between
                await self._drive(engine, run_id, taking.claimed(run_id))
            finally:
                taking.job_ended()

        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
        left = 0
        drained = False
        await app.open_async()
        try:
            await engine.__aenter__()  # the scheduler: orphans, due timers, outside decisions
            self._consumer = consumer = _LineConsumer(
                app,
                queues=[QUEUE_NAME],
                name=opts.worker_id,
                concurrency=opts.jobs,
                fetch_job_polling_interval=opts.poll_interval_s,
                listen_notify=True,
                install_signal_handlers=False,
                update_heartbeat_interval=max(0.5, opts.lease_ttl_s / 3),
                stalled_worker_timeout=opts.lease_ttl_s,
                shutdown_graceful_timeout=opts.drain_timeout_s,
                delete_jobs="successful",
            )
            taking.consumer = consumer
            if opts.line:
                line = Line(
                    conninfo(opts.database_url),
                    on_turn=consumer.wake,
                    name=opts.worker_id,
                    room=lambda: taking.running < taking.slots,
                )
                consumer.line = line
                line.join()
            if self._stop.is_set():
                self._consumer.stop()
            sides = [asyncio.ensure_future(self._sweep(app)), asyncio.ensure_future(self._leave_line())]
            if opts.router == "learned":
                sides.append(asyncio.ensure_future(self._follow_models(engine)))
            log.info("worker %s started (jobs=%d, lease=%gs)", opts.worker_id, opts.jobs, opts.lease_ttl_s)
            if ready is not None:
                ready()
            try:
                await self._consumer.run()
            finally:
                for side in sides:
                    side.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await side
            drained = True
            left = await engine.drain(opts.drain_timeout_s)
        finally:
            if not drained:
                await engine.close()
            await app.close_async()
            await taking.link.close()
            if isinstance(self._consumer, _LineConsumer) and self._consumer.line is not None:
                await self._consumer.line.close()
            if hasattr(invoker, "aclose"):
                await invoker.aclose()
            journal.close()
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
        log.info(
            "worker %s stopped: %d job(s), %d run(s) left to others", opts.worker_id, self.stats.jobs, left
        )
        return left

    async def _leave_line(self) -> None:
        """On stop, leave the line at once: a draining worker takes no job, the next one should."""
        await self._stop.wait()
        consumer = self._consumer
        if isinstance(consumer, _LineConsumer) and consumer.line is not None:
            await asyncio.shield(consumer.line.close())  # not cut short as the side tasks end

    async def _drive(self, engine: Engine, run_id: str, taken: TakenRun | None) -> None:
        self.stats.jobs += 1
        try:
            # the job's fetch moved the run's lease here from the queue's hold and read the run
            # (`taken`), unless another worker holds it (then the engine's claim fails and the
            # run continues there)
            result = await engine.run_until_settled(run_id, taken=taken)
        except RunNotFound:
            log.warning("job for run %s, which is not in the journal; dropped", run_id)
            self.stats.skipped += 1
            return
        except InvalidRunState as exc:  # another worker holds the run's lease and drives it
            log.info("%s", exc)
            self.stats.skipped += 1
            return
        self.stats.settled += 1
        log.info("run %s %s", run_id, result.state.value)

    def _learned_router(self) -> Router | None:
        """The optimizer's learned router over the latest stored models, as `overture serve`
        builds it; None (the engine's default router) before the first training or when told."""
        if self.options.router != "learned":
            return None
        from optimizer.router import load_router
        from optimizer.store import ModelStore

        store = ModelStore(self.options.models_dir)
        router = load_router(str(store.root))
        if router is None:
            log.info(
                "no trained models in %s yet: each step runs its own action until some are stored there",
                store.root,
            )
        else:
            log.info("routing with the learned models v%d from %s", router.models.version, store.root)
        return router

    async def _follow_models(self, engine: Engine) -> None:
        """Switch to a newer model version when one is stored (the API or `overture optimize
        train` retrains while workers run); the engine asks its router at every decision."""
        from optimizer.router import LearnedRouter, load_router
        from optimizer.store import ModelStore

        store = ModelStore(self.options.models_dir)
        while True:
            await asyncio.sleep(self.options.models_poll_s)
            try:
                versions = store.versions()
                current = engine.router.models.version if isinstance(engine.router, LearnedRouter) else None
                if not versions or versions[-1] == current:
                    continue
                if isinstance(engine.router, LearnedRouter):
                    models = await asyncio.to_thread(store.load, versions[-1])
                    engine.router.replace_models(models)
                else:
                    router = await asyncio.to_thread(load_router, str(store.root))
                    if router is None:
                        continue
                    engine.router = router
                log.info("routing with the learned models v%d from %s", versions[-1], store.root)
            except Exception:  # a half-copied or unreadable file: keep routing as before, look again
                log.exception("could not load the models in %s", store.root)

    async def _sweep(self, app: App) -> None:
        """Requeue the jobs of workers that stopped heartbeating (killed, partitioned away)."""
        period = max(1.0, self.options.lease_ttl_s / 2)
        while True:
            await asyncio.sleep(period)
            try:
                stalled = await app.job_manager.get_stalled_jobs(
                    queue=QUEUE_NAME, seconds_since_heartbeat=self.options.lease_ttl_s
                )
            except Exception:  # the database may be away a moment; the leases keep runs safe
                log.exception("could not look for stalled jobs")
                continue
            for job in stalled:
                try:
                    await app.job_manager.retry_job(job)
                    log.info("requeued job %s of a stalled worker", job.id)
                except Exception as exc:  # another worker's sweeper requeued it first
                    log.debug("job %s not requeued: %s", job.id, exc)
