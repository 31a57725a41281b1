"""A journal kept in this process's memory: `Journal`'s records and events without a database.

For what need not outlive the process: tests, ephemeral runs, the benchmark's in-memory mode.
Every method of `Journal` is here with its signature, records, events, ordering, errors and
redaction; a write is a few dict operations under a lock, with its listeners called after it (as
after `Journal`'s commit). Nothing is fsynced, nothing survives the process.

Copies: the journal keeps its own copy of every container handed to it (inputs, outputs, errors,
documents, event data), made as the SQL journal's JSON would make it (see `_snapshot`), because
callers keep theirs: an action may change the inputs it was called with, an output flows on into
the next step's inputs. Reads hand out copies again (records are frozen, their dicts are not), so
what a reader does with a record never changes the journal. Scalars are shared: they are immutable.
Listeners are handed the stored event itself (copying it for them would double the cost of an
event): a listener must not change its `data`.

Left to when it is read: an attempt's output size and the truncation at `OUTPUT_CAP_BYTES` need its
JSON text, which the step path never needs; `attempts()` measures an output the first time it
returns it (same figures, same preview).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from runtime import journal_stats
from runtime.errors import RunNotFound
from runtime.journal import OUTPUT_CAP_BYTES, EventListener, Journal, Redactor
from runtime.journal_schema import WHOLE_STEP, item_of
from runtime.journal_stats import FINISHED, RecentAttempt, WindowTotals
from runtime.records import (
    ApprovalRecord,
    AttemptRecord,
    Event,
    RunRecord,
    RunState,
    StepRecord,
    StepState,
    TimerRecord,
    UndoRecord,
    UndoState,
)
from runtime.routing import LATEST_MAX_ATTEMPTS, ActionStats

log = logging.getLogger("overture.runtime")

_ATOMIC = frozenset({str, int, float, bool, type(None)})
_ACTIVE = (RunState.RUNNING, RunState.COMPENSATING)
_STEP_STATES = {s.value: s for s in StepState}
_DONE = frozenset(s for s in StepState if s.done)
_STEP_FIELDS = frozenset(
    {"action", "inputs", "output", "error", "attempts", "started_at", "ended_at", "not_before", "updated_at"}
)
_UNDO_FIELDS = frozenset({"state", "action", "inputs", "output", "error", "attempts", "updated_at"})
_INTERRUPTED = "the worker stopped while the attempt was in flight"
_UNFINISHED = {
    "ended_at": None,
    "duration_s": None,
    "error_type": None,
    "error_class": None,
    "error_message": None,
    "transient": None,
    "retry_after": None,
    "output": None,
    "output_size": None,
    "output_truncated": False,
}
"""An attempt's columns before `finish_attempt` sets them."""
_UNMEASURED: Any = object()
"""An attempt's `output_size` until `_attempt` measures it (the first time it is read)."""
_NO_ERROR = dict.fromkeys(("error_type", "error_class", "error_message", "transient", "retry_after"))

Key = tuple[str, int]
"""(step_id, iteration): how a run's step results, compensations, timers and approvals are keyed."""
Row = dict[str, Any]


def _snapshot(value: Any) -> Any:
    """`value` as the SQL journal would read it back from its JSON (`json.dumps(default=str)`),
    built without the text: dicts and lists copied, tuples made lists, keys made strings, values
    JSON has no type for made their `str()`. Strings, numbers, booleans and None are shared."""
    kind = type(value)
    if kind in _ATOMIC:
        return value
    if kind is dict:
        return {
            (k if type(k) is str else _json_key(k)): (v if type(v) in _ATOMIC else _snapshot(v))
            for k, v in value.items()
        }
    if kind is list or kind is tuple:
        return [v if type(v) in _ATOMIC else _snapshot(v) for v in value]
    return _snapshot_other(value)


def _snapshot_other(value: Any) -> Any:
    # subclasses (an OrderedDict, a StrEnum, an IntEnum) are encoded by JSON as their base type
    if isinstance(value, dict):
        return {_json_key(k): _snapshot(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_snapshot(v) for v in value]
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)  # dates, decimals, UUIDs: their text, as `default=str` writes them


def _json_key(key: Any) -> str:
    """A dict key as JSON writes it (JSON applies no `default` to keys: other types fail)."""
    if isinstance(key, str):
        return str.__str__(key)
    if key is True or key is False or key is None:
        return json.dumps(key)
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return float.__repr__(key) if math.isfinite(key) else json.dumps(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _copy(value: Any) -> Any:
    """A copy of a stored value (already plain JSON data): fresh dicts and lists, shared scalars."""
    kind = type(value)
    if kind is dict:
        return {k: (v if type(v) in _ATOMIC else _copy(v)) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _ATOMIC else _copy(v) for v in value]
    return value


def _json_size(value: Any) -> int:
    return len(json.dumps(value, default=str, separators=(",", ":")).encode())


def _new_event(
    seq: int, run_id: str, time: float, type_: str, step_id: str | None, iteration: int | None, data: Any
) -> Event:
    """`Event(...)` in a quarter of the time: a frozen dataclass's `__init__` sets each field through
    `object.__setattr__`, which was a fifth of the journal's cost per step. Same object: fields in
    its `__dict__`, so equality, hashing and `repr` are the dataclass's own."""
    if _EVENT_SLOTS:  # no instance dict to fill
        return Event(seq, run_id, time, type_, step_id, iteration, data)
    event = _object_new(Event)
    _object_setattr(
        event,
        "__dict__",
        {"seq": seq, "run_id": run_id, "time": time, "type": type_, "step_id": step_id,
         "iteration": iteration, "data": data},
    )
    return event


_object_new = object.__new__
_object_setattr = object.__setattr__
_EVENT_SLOTS = "__slots__" in vars(Event)


class MemoryJournal:
    """The journal in memory; a drop-in for `Journal` (same methods, records and events)."""

    def __init__(self, *, redact: Redactor | None = None) -> None:
        self._listeners: list[EventListener] = []
        # the service's threads read and write beside the engine's loop, as with `Journal`
        self._lock = threading.Lock()
        self.fsync = True
        """Kept for `Journal`'s callers; there is nothing to sync."""
        self.defer_fsync = False
        """Likewise (`Journal` groups its fsyncs with it)."""
        self.redact: Redactor = redact or (lambda value: value)
        self.schema: str | None = None
        self.url = "memory://"
        self._runs: dict[str, Row] = {}
        self._active: dict[str, None] = {}
        """Runs running or compensating (`orphaned_runs` looks only at these)."""
        self._waiting: dict[str, None] = {}
        """Runs waiting (`runs_to_wake` looks only at these)."""
        self._steps: dict[str, dict[Key, Row]] = {}
        self._undos: dict[str, dict[Key, Row]] = {}
        self._timers: dict[str, dict[Key, Row]] = {}
        self._unfired: dict[tuple[str, str, int], Row] = {}
        """Timers not fired yet, the rows of `_timers` (`pending_timers` reads only these)."""
        self._approvals: dict[tuple[str, str, int], Row] = {}
        self._approvals_of: dict[str, dict[Key, Row]] = {}
        self._decided: dict[tuple[str, str, int], None] = {}
        """Decided approvals of runs not finished: `runs_to_wake` looks for their steps still waiting."""
        self._attempts: list[Row] = []
        """Attempt `id` is at index `id - 1`."""
        self._attempts_of_run: dict[str, list[Row]] = {}
        self._attempts_of_action: dict[str, list[Row]] = {}
        self._started: dict[str, dict[int, Row]] = {}
        """Per run, its attempts still `started`, by id (`interrupt_attempts` reads only these)."""
        self._events: dict[str, list[Event]] = {}
        self._seq = 0

    # -- opening and closing -----------------------------------------------------------------------

    def close(self) -> None:
        """Nothing to release; the records stay readable."""

    def drop_schema(self) -> None:
        raise ValueError("this journal has no schema of its own")

    async def flush(self) -> None:
        """Returns at once: every write is as durable as it will be (in memory) when it is made."""

    # -- events and listeners -------------------------------------------------------------------

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, event: Event) -> None:
        """Hand a written event to the listeners (outside the lock, as `Journal` does after its commit)."""
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # the write is done; a faulty subscriber must not undo the run
                log.exception("event listener %r failed on %s", listener, event.type)

    def _clean(self, data: Mapping[str, Any] | None) -> dict[str, Any]:
        """Event data as stored: redacted, then the journal's own copy."""
        if not data:
            return self.redact({})
        return _snapshot(self.redact(data if type(data) is dict else dict(data)))

    def _event(
        self,
        run_id: str,
        type_: str,
        now: float,
        step_id: str | None,
        iteration: int | None,
        data: dict[str, Any],
    ) -> Event:
        """Append an event (under the lock; `data` already clean); the caller notifies after."""
        if iteration == WHOLE_STEP:
            iteration = None  # events name an item only for for-each items
        self._seq += 1
        event = _new_event(self._seq, run_id, now, type_, step_id, iteration, data)
        events = self._events.get(run_id)
        if events is None:
            self._events[run_id] = [event]
        else:
            events.append(event)
        return event

    def append_event(
        self,
        run_id: str,
        type_: str,
        now: float,
        *,
        step_id: str | None = None,
        iteration: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Event:
        clean = self._clean(data)
        with self._lock:
            event = self._event(run_id, type_, now, step_id, iteration, clean)
        self._notify(event)
        return event

    def events_since(self, run_id: str, seq: int = 0, *, limit: int | None = None) -> list[Event]:
        """The run's events with a sequence number above `seq`, oldest first."""
        with self._lock:
            events = self._events.get(run_id, [])
            start = bisect_right(events, seq, key=lambda e: e.seq)
            chosen = events[start : start + limit] if limit else events[start:]
        return [
            Event(
                seq=e.seq,
                run_id=e.run_id,
                time=e.time,
                type=e.type,
                step_id=e.step_id,
                iteration=e.iteration,
                data=_copy(e.data),
            )
            for e in chosen
        ]

    # -- runs ------------------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        *,
        workflow_name: str,
        workflow_version: int | None,
        document: dict[str, Any],
        inputs: dict[str, Any],
        now: float,
        deadline_at: float | None,
        worker_id: str | None,
    ) -> RunRecord:
        row = {
            "id": run_id,
            "workflow_name": workflow_name,
            "workflow_version": workflow_version,
            "document": _snapshot(document),
            "inputs": _snapshot(inputs),
            "state": RunState.RUNNING,
            "created_at": now,
            "updated_at": now,
            "ended_at": None,
            "deadline_at": deadline_at,
            "error": None,
            "compensation": None,
            "cancel_requested": False,
            "worker_id": worker_id,
            "owner": None,
            "lease_until": None,
        }
        clean = self._clean(
            {"workflow": workflow_name, "version": workflow_version, "deadline_at": deadline_at}
        )
        with self._lock:
            if run_id in self._runs:
                # what the SQL journal's primary key says to a second run with the same id
                raise sa.exc.IntegrityError(
                    "INSERT INTO overture_runs", None, ValueError(f"run `{run_id}` already exists")
                )
            self._runs[run_id] = row
            self._active[run_id] = None
            if deadline_at is not None:
                timer = {"kind": "deadline", "wake_at": deadline_at, "fired": False, "created_at": now}
                self._timers.setdefault(run_id, {})[("", WHOLE_STEP)] = timer
                self._unfired[(run_id, "", WHOLE_STEP)] = timer
            event = self._event(run_id, "run.started", now, None, None, clean)
            record = self._run(row)
        self._notify(event)
        return record

    @staticmethod
    def _run(row: Row) -> RunRecord:
        return RunRecord(
            id=row["id"],
            workflow_name=row["workflow_name"],
            workflow_version=row["workflow_version"],
            document=_copy(row["document"]),
            inputs=_copy(row["inputs"]) or {},
            state=row["state"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            ended_at=row["ended_at"],
            deadline_at=row["deadline_at"],
            error=_copy(row["error"]),
            compensation=_copy(row["compensation"]),
            cancel_requested=row["cancel_requested"],
            worker_id=row["worker_id"],
            owner=row["owner"],
            lease_until=row["lease_until"],
        )

    def get_run(self, run_id: str) -> RunRecord:
        with self._lock:
            row = self._runs.get(run_id)
            if row is None:
                raise RunNotFound(run_id)
            return self._run(row)

    def run_state(self, run_id: str) -> RunState:
        """Just the run's state (`get_run` copies its whole document)."""
        row = self._runs.get(run_id)  # one dict read: atomic without the lock
        if row is None:
            raise RunNotFound(run_id)
        return row["state"]

    def find_run(self, prefix: str) -> RunRecord:
        """A run by id or unique id prefix (what people type in the CLI)."""
        with self._lock:
            found = [row for run_id, row in self._runs.items() if run_id.startswith(prefix)]
            if len(found) != 1:
                raise RunNotFound(prefix)
            return self._run(found[0])

    def list_runs(self, *, state: RunState | None = None, limit: int = 50) -> list[RunRecord]:
        with self._lock:
            rows = [r for r in self._runs.values() if state is None or r["state"] == state]
            rows.sort(key=lambda r: r["created_at"], reverse=True)
            return [self._run(r) for r in (rows if limit is None else rows[:limit])]

    def unfinished_runs(self) -> list[RunRecord]:
        with self._lock:
            rows = [r for r in self._runs.values() if not r["state"].finished]
            rows.sort(key=lambda r: r["created_at"])
            return [self._run(r) for r in rows]

    def set_run_state(
        self,
        run_id: str,
        state: RunState,
        now: float,
        *,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        compensation: dict[str, Any] | None = None,
    ) -> None:
        values: Row = {"state": state, "updated_at": now}
        if state.finished:
            values["ended_at"] = now
        if error is not None:
            values["error"] = _snapshot(self.redact(error))
        if compensation is not None:
            values["compensation"] = _snapshot(compensation)
        clean = self._clean({"state": state.value, **(data or {})}) if event else None
        with self._lock:
            row = self._runs.get(run_id)
            if row is not None:  # as an UPDATE of no row: nothing changes, the event is still written
                row.update(values)
                self._active.pop(run_id, None)
                self._waiting.pop(run_id, None)
                if state in _ACTIVE:
                    self._active[run_id] = None
                elif state == RunState.WAITING:
                    self._waiting[run_id] = None
            if state.finished:
                for (step_id, iteration), timer in self._timers.get(run_id, {}).items():
                    timer["fired"] = True
                    self._unfired.pop((run_id, step_id, iteration), None)
                for key in self._approvals_of.get(run_id, {}):
                    self._decided.pop((run_id, *key), None)
            if not event or clean is None:
                return
            written = self._event(run_id, event, now, None, None, clean)
        self._notify(written)

    # -- leases: one driver per run across processes ------------------------------------------------

    # one process: the machine's clock is the lease clock (as `Journal` on SQLite)
    server_clock = False

    def lease_now(self) -> float:
        return time.time()

    def claim(self, run_id: str, owner: str, *, now: float | None = None, ttl: float) -> bool:
        """Take (or renew) the right to drive a run; False while another worker's lease holds."""
        now = time.time() if now is None else now
        with self._lock:
            row = self._runs.get(run_id)
            if row is None:
                return False
            held_by, until = row["owner"], row["lease_until"]
            if held_by is not None and held_by != owner and not (until is not None and until < now):
                return False
            row["owner"] = owner
            row["lease_until"] = now + ttl
            return True

    def release(self, run_id: str, owner: str) -> None:
        with self._lock:
            row = self._runs.get(run_id)
            if row is not None and row["owner"] == owner:
                row["owner"] = None
                row["lease_until"] = None

    def orphaned_runs(self, *, now: float | None = None) -> list[str]:
        """Running or compensating runs nobody drives (their worker stopped or died)."""
        now = time.time() if now is None else now
        with self._lock:
            return [
                run_id
                for run_id in self._active
                if (row := self._runs[run_id])["owner"] is None
                or (row["lease_until"] is not None and row["lease_until"] < now)
            ]

    def cancel_requested(self, run_id: str) -> bool:
        """Whether a cancel was asked for (the engine checks this after every step)."""
        row = self._runs.get(run_id)  # one dict read: atomic without the lock
        if row is None:
            raise RunNotFound(run_id)
        return bool(row["cancel_requested"])

    def request_cancel(self, run_id: str, now: float, *, by: str | None = None) -> None:
        clean = self._clean({"by": by})
        with self._lock:
            row = self._runs.get(run_id)
            if row is None:
                raise RunNotFound(run_id)
            row["cancel_requested"] = True
            event = self._event(run_id, "run.cancel_requested", now, None, None, clean)
        self._notify(event)

    # -- step results ----------------------------------------------------------------------------

    def _field(self, name: str, value: Any) -> Any:
        """A step field's value as stored: redacted if people read it (inputs, error), then copied."""
        if name not in _STEP_FIELDS:
            raise KeyError(name)  # as the SQL journal's table has no such column
        if name == "inputs" or name == "error":
            value = self.redact(value)
        return value if type(value) in _ATOMIC else _snapshot(value)

    def _step_values(self, now: float, state: StepState | str | None, fields: Mapping[str, Any]) -> Row:
        """A step row's new values, as `Journal._step_values` makes them, in the journal's own copies."""
        values: Row = {"updated_at": now}
        for name, value in fields.items():
            values[name] = self._field(name, value)
        if state:
            self._set_state(values, state, now)
        return values

    @staticmethod
    def _set_state(values: Row, state: StepState | str, now: float) -> None:
        values["state"] = state = _STEP_STATES.get(state) or StepState(state)
        if state in _DONE:
            values.setdefault("ended_at", now)  # an `ended_at` among the fields stands

    def _put_step_row(self, run_id: str, key: Key, values: Row) -> None:
        rows = self._steps.get(run_id)
        if rows is None:
            rows = self._steps[run_id] = {}
        row = rows.get(key)
        if row is not None:
            row.update(values)
            return
        if "state" not in values:
            raise sa.exc.IntegrityError(
                "INSERT INTO overture_step_results", None, ValueError("a new step row needs a state")
            )
        rows[key] = {
            "action": None,
            "inputs": None,
            "output": None,
            "error": None,
            "attempts": 0,
            "started_at": None,
            "ended_at": None,
            "not_before": None,
            **values,
        }

    @staticmethod
    def _step(run_id: str, key: Key, row: Row) -> StepRecord:
        return StepRecord(
            run_id=run_id,
            step_id=key[0],
            iteration=key[1],
            state=row["state"],
            action=row["action"],
            inputs=_copy(row["inputs"]),
            output=_copy(row["output"]),
            error=_copy(row["error"]),
            attempts=row["attempts"] or 0,
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            not_before=row["not_before"],
        )

    def step_results(self, run_id: str) -> dict[tuple[str, int], StepRecord]:
        # in key order, as SQLite reads them (by its primary key): code that walks the rows (the
        # saga cancelling what is left) writes its events in the same order on either journal
        with self._lock:
            rows = sorted(self._steps.get(run_id, {}).items())
            return {key: self._step(run_id, key, row) for key, row in rows}

    def put_step(
        self,
        run_id: str,
        step_id: str,
        iteration: int,
        now: float,
        *,
        state: StepState,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """Write a step's state (and its event) at once."""
        values = self._step_values(now, state, fields)
        clean = self._clean(data) if event else None
        with self._lock:
            self._put_step_row(run_id, (step_id, iteration), values)
            if event and clean is not None:
                written = self._event(run_id, event, now, step_id, iteration, clean)
            else:
                return
        self._notify(written)

    # -- attempts --------------------------------------------------------------------------------

    def start_attempt(
        self,
        *,
        run_id: str,
        workflow_name: str,
        step_id: str,
        iteration: int,
        attempt: int,
        kind: str,
        action: str,
        idempotency_key: str,
        now: float,
        worker_id: str | None,
        runs_in_flight: int | None,
        propensity: float | None,
        candidates: Sequence[str] | None,
        inputs: Any,
    ) -> int:
        """Record that an attempt is about to call its action (before the call is made)."""
        clean_inputs = _snapshot(self.redact(inputs))
        data = self.redact({"attempt": attempt, "action": action, "idempotency_key": idempotency_key})
        # the columns known at the start; `_attempt` fills in the others until `finish_attempt` sets them
        row: Row = {
            "id": 0,
            "run_id": run_id,
            "workflow_name": workflow_name,
            "step_id": step_id,
            "iteration": iteration,
            "attempt": attempt,
            "kind": kind,
            "action": action,
            "idempotency_key": idempotency_key,
            "started_at": now,
            "outcome": "started",
            "worker_id": worker_id,
            "runs_in_flight": runs_in_flight,
            "propensity": propensity,
            "candidates": list(candidates) if candidates else None,
        }
        key = (step_id, iteration)
        with self._lock:
            attempts = self._attempts
            attempts.append(row)
            attempt_id = row["id"] = len(attempts)
            by_run = self._attempts_of_run.get(run_id)
            if by_run is None:
                self._attempts_of_run[run_id] = [row]
            else:
                by_run.append(row)
            by_action = self._attempts_of_action.get(action)
            if by_action is None:
                self._attempts_of_action[action] = [row]
            else:
                by_action.append(row)
            started = self._started.get(run_id)
            if started is None:
                self._started[run_id] = {attempt_id: row}
            else:
                started[attempt_id] = row
            if kind == "action":
                rows = self._steps.get(run_id)
                if rows is None:
                    rows = self._steps[run_id] = {}
                step = rows.get(key)
                if step is None:
                    rows[key] = {
                        "state": StepState.RUNNING,
                        "action": action,
                        "inputs": clean_inputs,
                        "output": None,
                        "error": None,
                        "attempts": attempt,
                        "started_at": now if attempt == 1 else None,
                        "ended_at": None,
                        "not_before": None,
                        "updated_at": now,
                    }
                else:
                    step["state"] = StepState.RUNNING
                    step["action"] = action
                    step["inputs"] = clean_inputs
                    step["attempts"] = attempt
                    step["not_before"] = None
                    step["updated_at"] = now
                    # only the first attempt sets when the step started, and never over an earlier one
                    if step["started_at"] is None and attempt == 1:
                        step["started_at"] = now
                event = self._event(run_id, "step.started", now, step_id, iteration, data)
            else:
                self._put_undo_row(
                    run_id,
                    key,
                    {
                        "state": UndoState.RUNNING,
                        "action": action,
                        "inputs": clean_inputs,
                        "attempts": attempt,
                        "updated_at": now,
                    },
                )
                event = self._event(run_id, "compensation.step_started", now, step_id, iteration, data)
        self._notify(event)
        return attempt_id

    def finish_attempt(
        self,
        attempt_id: int,
        now: float,
        *,
        outcome: str,
        output: Any = None,
        error: dict[str, Any] | None = None,
        step: Mapping[str, Any] | None = None,
        undo: Mapping[str, Any] | None = None,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> bool | None:
        """End an attempt; with `step`/`undo` also update its step/compensation row and append the
        event — all at once, or (on an error) none of it. With `step`, returns the run's cancel
        flag as it was then (as `Journal.finish_attempt`)."""
        row = self._attempts[attempt_id - 1] if 0 < attempt_id <= len(self._attempts) else None
        if row is None:
            raise sa.exc.NoResultFound(f"no attempt {attempt_id}")
        run_id, key = row["run_id"], (row["step_id"], row["iteration"])
        clean_output = stored = None
        if output is not None:
            clean_output = self.redact(output)
            stored = clean_output if type(clean_output) in _ATOMIC else _snapshot(clean_output)
        err = _snapshot(self.redact(error)) if error else None
        step_values: Row | None = None
        if step is not None:
            step_values = {"updated_at": now}
            state = None
            for name, value in step.items():
                if name == "state":
                    state = value
                # the step's output and error are mostly the attempt's own: one copy serves both
                # (the step's output is stored unredacted: shared only if redacting left it as it was)
                elif name == "output" and value is output and clean_output is output:
                    step_values[name] = stored
                elif name == "error" and value is error and err is not None:
                    step_values[name] = err
                elif value is None and name in _STEP_FIELDS:
                    step_values[name] = None
                else:
                    step_values[name] = self._field(name, value)
            if state:
                self._set_state(step_values, state, now)
            elif key not in self._steps.get(run_id, {}):
                raise sa.exc.IntegrityError(
                    "INSERT INTO overture_step_results", None, ValueError("a new step row needs a state")
                )
        undo_values = None
        if undo is not None:
            undo_values = {}
            for name, value in undo.items():
                if name not in _UNDO_FIELDS:
                    raise KeyError(name)
                if name == "error":
                    value = self.redact(value)
                undo_values[name] = value if type(value) in _ATOMIC else _snapshot(value)
            if "state" in undo_values:
                undo_values["state"] = UndoState(undo_values["state"])
            undo_values["updated_at"] = now
            if key not in self._undos.get(run_id, {}) and not {"state", "action"} <= undo_values.keys():
                missing = ValueError("a new undo row needs a state and an action")
                raise sa.exc.IntegrityError("INSERT INTO overture_compensations", None, missing)
        clean = self._clean(data) if event else None
        with self._lock:
            row["ended_at"] = now
            row["duration_s"] = max(0.0, now - row["started_at"])
            row["outcome"] = outcome
            if err is None:
                row.update(_NO_ERROR)
            else:
                row["error_type"] = err.get("type")
                row["error_class"] = err.get("class")
                row["error_message"] = err.get("message")
                row["transient"] = err.get("transient")
                row["retry_after"] = err.get("retry_after")
            row["output"] = stored
            row["output_size"] = None if stored is None else _UNMEASURED
            row["output_truncated"] = False
            started = self._started.get(run_id)
            if started is not None:
                started.pop(attempt_id, None)
            if step_values is not None:
                self._put_step_row(run_id, key, step_values)
            if undo_values is not None:
                self._put_undo_row(run_id, key, undo_values)
            run = self._runs.get(run_id) if step_values is not None else None
            cancel = None if run is None else bool(run["cancel_requested"])
            if not event or clean is None:
                return cancel
            written = self._event(run_id, event, now, key[0], key[1], clean)
        self._notify(written)
        return cancel

    def interrupt_attempts(self, run_id: str, now: float) -> list[AttemptRecord]:
        """Mark the attempts left `started` by a crash as `interrupted`; returns them (as they were
        found, still `started`, like `Journal`)."""
        events: list[Event] = []
        with self._lock:
            started = self._started.pop(run_id, None)
            if not started:
                return []
            # the order SQLite reads them in (by its run/step/iteration index)
            rows = sorted(started.values(), key=lambda r: (r["step_id"], r["iteration"], r["id"]))
            found = [self._attempt(r) for r in rows]
            for row in rows:
                row.update(
                    outcome="interrupted",
                    ended_at=now,
                    error_type="interrupted",
                    error_class=None,
                    error_message=_INTERRUPTED,
                )
                kind = "step.interrupted" if row["kind"] == "action" else "compensation.step_interrupted"
                clean = self._clean({"attempt": row["attempt"], "action": row["action"]})
                events.append(
                    self._event(run_id, kind, now, row["step_id"], item_of(row["iteration"]), clean)
                )
        for event in events:
            self._notify(event)
        return found

    def _attempt(self, row: Row) -> AttemptRecord:
        """An attempt's record (under the lock); measures its output first if that is still to do."""
        if row.get("output_size") is _UNMEASURED:
            output = row["output"]
            size = _json_size(output)
            row["output_size"] = size
            if size > OUTPUT_CAP_BYTES:
                row["output_truncated"] = True
                row["output"] = {"preview": json.dumps(output, default=str)[:4096]}
        candidates = row["candidates"]
        return AttemptRecord(
            **{
                **_UNFINISHED,
                **row,
                "output": _copy(row.get("output")),
                "candidates": list(candidates) if candidates is not None else None,
            }
        )

    def attempts(
        self,
        *,
        action: str | Iterable[str] | None = None,
        run_id: str | None = None,
        step_id: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        until: float | None = None,
        outcome: str | None = None,
        limit: int | None = None,
    ) -> list[AttemptRecord]:
        """Attempts, oldest first, filtered by action(s), run, step, kind, outcome and
        `since <= started_at < until` (see `AttemptRecord` for the columns)."""
        names = None if action is None else {action} if isinstance(action, str) else set(action)
        with self._lock:
            rows: Iterable[Row]
            if run_id is not None:
                rows = self._attempts_of_run.get(run_id, [])
            elif names is not None:
                rows = [r for name in names for r in self._attempts_of_action.get(name, [])]
            else:
                rows = self._attempts
            chosen = [
                r
                for r in rows
                if (names is None or r["action"] in names)
                and (run_id is None or r["run_id"] == run_id)
                and (step_id is None or r["step_id"] == step_id)
                and (kind is None or r["kind"] == kind)
                and (outcome is None or r["outcome"] == outcome)
                and (since is None or r["started_at"] >= since)
                and (until is None or r["started_at"] < until)
            ]
            chosen.sort(key=lambda r: (r["started_at"], r["id"]))
            if limit:
                chosen = chosen[:limit]
            return [self._attempt(r) for r in chosen]

    def action_stats(self, actions: Iterable[str], *, since: float) -> dict[str, ActionStats]:
        """Recent outcomes per action, as `runtime.journal_stats` reads them from SQL: calls, error
        rate and mean latency over the finished attempts started since `since`, and the age-weighted
        `latest_*` over the newest of them and the newest few one by one (`newest_*`), composed by
        the same function (`journal_stats.action_stats`)."""
        return journal_stats.action_stats(self, actions, since=since)

    def action_totals(self, actions: Iterable[str], *, since: float) -> dict[str, WindowTotals]:
        """`journal_stats.WindowTotals` per action with finished attempts started since `since`."""
        totals: dict[str, WindowTotals] = {}
        with self._lock:
            for name in dict.fromkeys(actions):
                calls = failed = timed = 0
                duration = 0.0
                for r in self._attempts_of_action.get(name, ()):
                    if r["started_at"] >= since and r["outcome"] in FINISHED:
                        calls += 1
                        failed += r["outcome"] != "succeeded"
                        if r["duration_s"] is not None:
                            timed += 1
                            duration += r["duration_s"]
                if calls:
                    totals[name] = (calls, failed, duration, timed)
        return totals

    def recent_attempts(self, actions: Iterable[str], *, since: float) -> dict[str, list[RecentAttempt]]:
        """Per action, its newest finished attempts started since `since`, newest first (ties in
        start time broken by insertion order, as the SQL query does), at most `LATEST_MAX_ATTEMPTS`."""
        recent: dict[str, list[RecentAttempt]] = {}
        with self._lock:
            for name in dict.fromkeys(actions):
                rows = [
                    (r["started_at"], r["id"], r["outcome"] != "succeeded", r["duration_s"])
                    for r in self._attempts_of_action.get(name, ())
                    if r["started_at"] >= since and r["outcome"] in FINISHED
                ]
                rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
                recent[name] = [
                    (float(r[0]), int(r[1]), r[2], float(r[3]) if r[3] is not None else None)
                    for r in rows[:LATEST_MAX_ATTEMPTS]
                ]
        return recent

    # -- compensation ----------------------------------------------------------------------------

    def _put_undo_row(self, run_id: str, key: Key, values: Row) -> None:
        rows = self._undos.get(run_id)
        if rows is None:
            rows = self._undos[run_id] = {}
        row = rows.get(key)
        if row is None:
            rows[key] = {"inputs": None, "output": None, "error": None, "attempts": 0, **values}
        else:
            row.update(values)

    def undo_results(self, run_id: str) -> dict[tuple[str, int], UndoRecord]:
        with self._lock:
            return {
                key: UndoRecord(
                    run_id=run_id,
                    step_id=key[0],
                    iteration=key[1],
                    state=r["state"],
                    action=r["action"],
                    inputs=_copy(r["inputs"]),
                    output=_copy(r["output"]),
                    error=_copy(r["error"]),
                    attempts=r["attempts"] or 0,
                )
                for key, r in sorted(self._undos.get(run_id, {}).items())
            }

    def put_undo(
        self,
        run_id: str,
        step_id: str,
        iteration: int,
        now: float,
        *,
        state: UndoState,
        action: str,
        error: dict[str, Any] | None = None,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        values = {
            "state": state,
            "action": action,
            "error": _snapshot(self.redact(error)) if error else None,
            "updated_at": now,
        }
        clean = self._clean(data) if event else None
        with self._lock:
            self._put_undo_row(run_id, (step_id, iteration), values)
            if not event or clean is None:
                return
            written = self._event(run_id, event, now, step_id, iteration, clean)
        self._notify(written)

    # -- timers ----------------------------------------------------------------------------------

    def set_timer(
        self,
        run_id: str,
        step_id: str,
        iteration: int,
        *,
        kind: str,
        wake_at: float,
        now: float,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Store a timer and mark the step waiting, at once."""
        values = self._step_values(now, StepState.WAITING, {"action": "core.wait", "started_at": now})
        clean = self._clean(data) if event else None
        with self._lock:
            timers = self._timers.get(run_id)
            if timers is None:
                timers = self._timers[run_id] = {}
            timer = timers.get((step_id, iteration))
            if timer is None:
                timer = timers[(step_id, iteration)] = {}
            timer.update(kind=kind, wake_at=wake_at, fired=False, created_at=now)
            self._unfired[(run_id, step_id, iteration)] = timer
            self._put_step_row(run_id, (step_id, iteration), values)
            if not event or clean is None:
                return
            written = self._event(run_id, event, now, step_id, item_of(iteration), clean)
        self._notify(written)

    @staticmethod
    def _timer(run_id: str, step_id: str, iteration: int, row: Row) -> TimerRecord:
        return TimerRecord(
            run_id=run_id,
            step_id=step_id,
            iteration=iteration,
            kind=row["kind"],
            wake_at=row["wake_at"],
            fired=row["fired"],
        )

    def timers(self, run_id: str) -> dict[tuple[str, int], TimerRecord]:
        with self._lock:
            return {
                key: self._timer(run_id, key[0], key[1], row)
                for key, row in sorted(self._timers.get(run_id, {}).items())
            }

    def pending_timers(self, *, due_by: float | None = None) -> list[TimerRecord]:
        """Unfired timers of unfinished runs, earliest first (only those due by `due_by` if given)."""
        with self._lock:
            found = [
                self._timer(run_id, step_id, iteration, row)
                for (run_id, step_id, iteration), row in self._unfired.items()
                if (run := self._runs.get(run_id)) is not None
                and not run["state"].finished
                and (due_by is None or row["wake_at"] <= due_by)
            ]
        found.sort(key=lambda t: t.wake_at)
        return found

    def runs_to_wake(self) -> list[str]:
        """Waiting runs that were moved on from outside: a cancel request, or a decided approval
        whose step still waits."""
        with self._lock:
            found = [run_id for run_id in self._waiting if self._runs[run_id]["cancel_requested"]]
            for run_id, step_id, iteration in self._decided:
                if run_id not in self._waiting:
                    continue
                step = self._steps.get(run_id, {}).get((step_id, iteration))
                if step is not None and step["state"] == StepState.WAITING:
                    found.append(run_id)
        return list(dict.fromkeys(found))

    # -- approvals -------------------------------------------------------------------------------

    @staticmethod
    def _approval(key: tuple[str, str, int], row: Row) -> ApprovalRecord:
        return ApprovalRecord(
            run_id=key[0],
            step_id=key[1],
            iteration=key[2],
            prompt=row["prompt"],
            approvers=_copy(row["approvers"]),
            requested_at=row["requested_at"],
            decided_at=row["decided_at"],
            approved=row["approved"],
            decided_by=row["decided_by"],
            comment=row["comment"],
            decided_as=row.get("decided_as"),
        )

    def request_approval(
        self,
        run_id: str,
        step_id: str,
        iteration: int,
        *,
        prompt: str | None,
        approvers: list[str] | None,
        now: float,
        inputs: Any,
    ) -> None:
        row = {
            "prompt": prompt,
            "approvers": _snapshot(approvers),
            "requested_at": now,
            "decided_at": None,
            "approved": None,
            "decided_by": None,
            "comment": None,
        }
        values = self._step_values(
            now, StepState.WAITING, {"action": "core.approval", "inputs": inputs, "started_at": now}
        )
        clean = self._clean({"prompt": prompt, "approvers": approvers})
        key = (run_id, step_id, iteration)
        with self._lock:
            if key not in self._approvals:  # asked again (a resumed run): the first request stands
                self._approvals[key] = row
                self._approvals_of.setdefault(run_id, {})[(step_id, iteration)] = row
            self._put_step_row(run_id, (step_id, iteration), values)
            event = self._event(run_id, "approval.requested", now, step_id, item_of(iteration), clean)
        self._notify(event)

    def approvals(self, run_id: str | None = None, *, pending_only: bool = False) -> list[ApprovalRecord]:
        with self._lock:
            if run_id is None:
                rows = list(self._approvals.items())
            else:
                rows = [((run_id, *key), row) for key, row in self._approvals_of.get(run_id, {}).items()]
            found = [
                self._approval(key, row) for key, row in rows if not pending_only or row["decided_at"] is None
            ]
        # ties in request time in key order, as SQLite reads them (by its primary key)
        found.sort(key=lambda a: (a.requested_at, a.run_id, a.step_id, a.iteration))
        return found

    def decide_approval(
        self,
        run_id: str,
        step_id: str,
        iteration: int,
        *,
        approved: bool,
        by: str,
        comment: str | None,
        now: float,
        decided_as: str | None = None,
    ) -> bool:
        """Record a decision; False when the approval was not pending (unknown or already decided)."""
        clean = self._clean({"approved": approved, "by": by, "as": decided_as, "comment": comment})
        key = (run_id, step_id, iteration)
        with self._lock:
            row = self._approvals.get(key)
            if row is None or row["decided_at"] is not None:
                return False
            row.update(
                decided_at=now, approved=approved, decided_by=by, decided_as=decided_as, comment=comment
            )
            run = self._runs.get(run_id)
            if run is not None and not run["state"].finished:
                self._decided[key] = None
            event = self._event(run_id, "approval.given", now, step_id, item_of(iteration), clean)
        self._notify(event)
        return True

    def fire_timer(
        self,
        run_id: str,
        step_id: str,
        iteration: int,
        now: float,
        *,
        output: Any,
        event: str | None = "step.succeeded",
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Complete a `core.wait` step: the timer is spent and the step succeeded, at once."""
        values = self._step_values(now, StepState.SUCCEEDED, {"output": output, "error": None})
        clean = self._clean(data) if event else None
        with self._lock:
            timer = self._timers.get(run_id, {}).get((step_id, iteration))
            if timer is not None:
                timer["fired"] = True
                self._unfired.pop((run_id, step_id, iteration), None)
            self._put_step_row(run_id, (step_id, iteration), values)
            if not event or clean is None:
                return
            written = self._event(run_id, event, now, step_id, item_of(iteration), clean)
        self._notify(written)


AnyJournal = Journal | MemoryJournal
"""Either journal: what the engine's layers can take (`journal: AnyJournal`)."""
