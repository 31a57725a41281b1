"""Scale out: `overture worker` processes on any number of machines share one PostgreSQL journal.

The unit of dispatch is a run. Whoever starts a run (the API, `overture worker submit`, a
trigger) journals it and defers one Procrastinate job naming it; a worker picks the job up
(a LISTEN/NOTIFY wake-up of the worker whose turn it is, a `FOR UPDATE SKIP LOCKED` claim) and
drives the run with the ordinary `Engine`, holding the run's lease in the journal. The journal,
not the queue, is the truth: a worker that dies stops renewing its leases and any other worker's
engine takes the runs over and recovers them (completed steps are not called again; an
in-flight one at most once more, with the same idempotency key).

    queue.RunQueue      the Procrastinate app: schema, enqueue a run
    handoff             the hand-off, one statement each way: hold the run and defer its job;
                        claim the job, move the run's lease and read the run back
    line.Line           the line of workers with a free slot (an advisory lock): a job's NOTIFY
                        wakes the one whose turn it is, not every idle worker
    worker.Worker       one worker process: engine + queue consumer + stalled-job sweeper,
                        routing by the optimizer's learned models when there are some
    dispatch.QueueingEngine   an Engine that journals runs and leaves the driving to workers (API)
"""

from runtime.workers.dispatch import QueueingEngine
from runtime.workers.queue import QUEUE_NAME, TASK_NAME, RunQueue, conninfo, ensure_schema
from runtime.workers.worker import Worker, WorkerOptions

__all__ = [
    "QUEUE_NAME",
    "TASK_NAME",
    "QueueingEngine",
    "RunQueue",
    "Worker",
    "WorkerOptions",
    "conninfo",
    "ensure_schema",
]
