"""Lead intake: the one way records become leads, whichever door they come through.

The daily harvest and the admin's "harvest now" (``cam.pipeline.harvest``), ``manage.py
cam_import_leads`` and the admin's CSV import (``cam.pipeline.imports``) and the API's single and bulk
create (``cam.api.leads``) all call ``leads_intake``, so one record ends the same way at every door:

- **rejected** — it cannot become a lead: the reader could not read it, it holds what the database
  cannot store (``records.unstorable_reason``), or ``records.clean_record`` refuses its address, company
  size, website or time zone. Stored as a ``HarvestRejection`` with its line (the file's line, or the
  item's index for the API) and the reason, so staff can fix the source.
- **duplicate** — its address came earlier in the same input (the reason names that line or item,
  however far back), or it is already a lead of the campaign and brings nothing new. Addresses are
  compared in their one spelling (``cam.addresses``): ``anna@xn--exmple-cua.com`` and ``anna@exämple.com``
  are one lead, also when an older lead was stored in the other spelling.
- **suppressed** — its address, its domain or a domain above it is on the suppression list.
- **updated** — it is already a lead of the campaign and brings profile values that differ: each
  non-empty new value replaces the lead's, and the provenance (source, harvested at, raw data) follows.
  Status, score and sequence fields are never touched.
- **created** — a new ``NEW`` lead.

Duplicates and suppressed records are reported to the caller by line, with the reason, but not stored:
a daily harvest would otherwise store every unchanged lead every day.

Records are handled in batches of ``BATCH_SIZE`` (growing to ``BATCH_GROWTH`` times that over a long
input), each in its own transaction, at the same few queries whatever its size: the suppressions, the
existing leads, one insert, one bulk update, one insert of the rejections, and one read of the batch's
created and updated leads when the caller keeps them. On PostgreSQL the batch's good records are first
streamed by COPY into a staging table (``cam.pipeline.lead_insert``), the suppressions are found by
joining it, and the new leads move across from it in one statement, which also finds the existing
leads: a record whose address is already a lead is left out by the unique index, and only those (and
addresses not in plain ASCII, whose lead may be stored in another spelling) are read, to be judged
duplicate or updated. A capped intake (``max_leads``) looks its existing leads up first instead, to
count only new ones against the cap. Every lookup of leads names its addresses, so none depends on the
table's statistics, which a long import outgrows. Addresses are
validated once each, most of them by ``cam.addresses``' fast path for plain addresses.
A long file's import judges the next batch while two threads write the two before it, each on a
connection of its own (``_intake_two_writers``), so that the database writes on both cores.
Nothing but the batches in hand, what the caller asks to keep and the compact first-seen table
(``cam.pipeline.first_seen``) is held in memory, so a file of a million rows streams through.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, Literal

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, reset_queries, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from cam.addresses import address_key, address_spellings, domain_and_parents, domain_key, domain_spellings, mx_resolver
from cam.bulk import bulk_update_values
from cam.models import Campaign, HarvestRejection, JobExecution, Lead, LeadSource
from cam.pipeline.first_seen import FirstSeen
from cam.pipeline.lead_insert import (
    STAGED_ADDRESSES,
    STAGED_DOMAINS,
    StagedRows,
    leads_insert,
    leads_move,
    leads_stage,
    staged_rows,
    staging_supported,
    statistics_refresh,
)
from cam.pipeline.records import (
    CleanRecord,
    RejectedRecord,
    clean_record,
    storable_data,
    storable_text,
    unstorable_field,
    unstorable_reason,
)
from cam.pipeline.row_cleaning import RowCleaner
from cam.sources.base import LEAD_FIELDS, SourceRecord
from cam.sources.row_values import Columns, RowValues
from cam.suppressions import suppressed_addresses

BATCH_SIZE = 1000
# A long input's batches double up to this many times BATCH_SIZE: each batch is one transaction with its
# own lookups, so bigger ones cost fewer commits and queries a row, at a few megabytes each.
BATCH_GROWTH = 8
# New objects between two collections of Python's cycle collector during a long import (its default: 700).
FEWER_COLLECTIONS_FROM = 50_000
SWITCH_INTERVAL = 0.0005
# Statistics of the leads table are refreshed after an intake that created at least this many leads.
REFRESH_STATISTICS_FROM = 5000
OUTCOMES = ("created", "updated", "duplicate", "suppressed", "rejected")
PROBLEM_OUTCOMES = ("duplicate", "suppressed", "rejected")
PROFILE_FIELDS = ("first_name", "last_name", "company", "title", "industry", "country", "company_size",
                  "website", "timezone")
# How a duplicate names the earlier record: a file's line, or an API request's item.
Numbering = Literal["line", "item"]


def empty_counts() -> dict[str, int]:
    return {"read": 0, **dict.fromkeys(OUTCOMES, 0)}


def lead_fields_of(data: Mapping[str, Any]) -> dict[str, Any]:
    """The lead fields of a record that already uses the lead's field names (an API item)."""
    return {name: data[name] for name in LEAD_FIELDS if name in data}


@dataclass(frozen=True)
class IntakeProblem:
    """A record that did not become or change a lead: ``outcome`` is duplicate, suppressed or rejected.
    ``field`` is the lead field the reason is about (``email`` for the address), or ``""``."""

    line: int | None
    outcome: str
    reason: str
    field: str = ""

    def __str__(self) -> str:
        return f"Line {self.line}: {self.reason}" if self.line is not None else self.reason


@dataclass
class IntakeReport:
    """What an intake did. ``problems`` holds, in input order, the first ``problems_kept`` records of each
    problem outcome; ``leads`` the first ``leads_kept`` created or updated leads by line, each as
    ``(outcome, lead)``."""

    counts: dict[str, int] = field(default_factory=empty_counts)
    problems: list[IntakeProblem] = field(default_factory=list)
    leads: dict[int, tuple[str, Lead]] = field(default_factory=dict)


@dataclass
class _Intake:
    """One run's settings and state, shared by its batches."""

    campaign: Campaign
    map_record: Callable[[Mapping[str, Any]], dict[str, Any]]
    field_positions: Callable[[Columns], Sequence[tuple[str, int]]] | None
    source: LeadSource | None
    execution: JobExecution | None
    numbering: Numbering
    problems_kept: int | None
    leads_kept: int | None
    report: IntakeReport
    first_seen: FirstSeen = field(default_factory=FirstSeen)
    dns_resolver: Any = None
    cleaner: RowCleaner | None = None  # for the file's rows, when ``field_positions`` is given

    def earlier(self, line: int | None) -> str:
        return f"item {line} of this request" if self.numbering == "item" else f"on line {line}"

    def report_problems(self, problems: list[IntakeProblem]) -> None:
        """Count a batch's problems and keep the first of each kind. A batch judges its records in two
        passes (the record, then the database), so they are put back in input order first."""
        counts = self.report.counts
        for problem in sorted(problems, key=lambda problem: problem.line or 0):
            counts[problem.outcome] += 1
            if self.problems_kept is None or counts[problem.outcome] <= self.problems_kept:
                self.report.problems.append(problem)


def leads_intake(
    *,
    campaign: Campaign,
    records: Iterable[SourceRecord],
    map_record: Callable[[Mapping[str, Any]], dict[str, Any]] = lead_fields_of,
    field_positions: Callable[[Columns], Sequence[tuple[str, int]]] | None = None,
    source: LeadSource | None = None,
    execution: JobExecution | None = None,
    max_leads: int | None = None,
    on_batch: Callable[[dict[str, int]], None] | None = None,
    numbering: Numbering = "line",
    problems_kept: int | None = 0,
    leads_kept: int | None = 0,
    overlap: bool = False,
) -> IntakeReport:
    """Turn ``records`` into leads of ``campaign`` (see the module's docstring for the outcomes).

    ``map_record`` gives a record's lead fields (a source's column mapping); the whole record is kept
    as the lead's raw data. ``field_positions``, for records that are a file's rows (``RowValues``), says
    where ``map_record`` reads each field from, so that they can be cleaned by column
    (``cam.pipeline.row_cleaning``). ``source`` and ``execution`` are the provenance written on leads and
    rejections. ``max_leads`` caps the leads created (the rest of the input is not read). ``on_batch``
    is called with the running counts after each batch (progress bars). ``problems_kept`` and
    ``leads_kept`` bound what the report holds (``None``: all of it; the API keeps all of a request,
    which its item limit bounds). ``overlap`` lets the next batch be judged while the database writes
    the ones before (on PostgreSQL, without ``max_leads``: two at once on connections of their own,
    ``_intake_two_writers``, or inside the caller's transaction one on its connection,
    ``_intake_overlapped``), for a long file whose
    records are read without the database. Raises what reading ``records`` raises (``SourceError``);
    the batches written before stay written.
    """
    run = _Intake(campaign=campaign, map_record=map_record, field_positions=field_positions, source=source,
                  execution=execution,
                  numbering=numbering, problems_kept=problems_kept, leads_kept=leads_kept, report=IntakeReport())
    counts = run.report.counts
    iterator = iter(records)
    # One resolver for the whole run: it caches answers, so each domain is looked up once.
    run.dns_resolver = mx_resolver() if settings.AICMO_CAM_VERIFY_MX else None

    def written() -> None:
        if settings.DEBUG:
            # Django keeps the text of the last 9,000 queries with DEBUG on (``make run``), and a batch's
            # lookups name a thousand addresses each: a long import would hold hundreds of megabytes of SQL.
            reset_queries()
        if on_batch:
            on_batch(dict(counts))

    if max_leads is not None and max_leads <= 0:
        return run.report
    batches = _batches(iterator, grow=max_leads is None)
    if overlap and max_leads is None and staging_supported():
        with _fewer_collections():
            if connections[DEFAULT_DB_ALIAS].in_atomic_block:  # the caller's transaction holds every batch
                _intake_overlapped(run, batches, written)
            else:
                _intake_two_writers(run, batches, written)
    else:
        for batch in batches:
            room = None if max_leads is None else max_leads - counts["created"]
            _write_batch(run, _judge_batch(run, batch), room=room)
            written()
            if max_leads is not None and counts["created"] >= max_leads:
                break
    if counts["created"] >= REFRESH_STATISTICS_FROM:
        # No lookup of the intake depends on the table's statistics (each names its addresses, or finds
        # them by the insert itself), but what runs next over the campaign does, and the table grew
        # faster than autovacuum follows.
        statistics_refresh()
    return run.report


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Python's cycle collector made to run less often during a long import. Two batches in hand hold a few
    hundred thousand objects (records, rows, cleaned fields); by default each 700 new objects start a
    collection of the young ones, and the older ones, where a batch's objects soon sit, are looked through
    again every 10 and 100 of those: a quarter of the time spent judging the records. They are freed by
    their reference counts, not by the collector, which still runs, every 50,000 new objects; the
    thresholds are put back afterwards."""
    thresholds = gc.get_threshold()
    gc.set_threshold(FEWER_COLLECTIONS_FROM, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


_switches_lock = threading.Lock()
_switches_users = 0
_switches_before = 0.0


@contextmanager
def _quick_switches() -> Iterator[None]:
    """The interpreter handed between threads every half millisecond instead of every five while batches
    are judged on one thread and written on another. The writer needs the interpreter only briefly, to
    send a statement and read its answer, but waited up to the whole interval for the judging thread to
    let go of it after each: the database sat idle a quarter of a long import. A million rows went from
    24,000 to 27,000 rows/s (docs/benchmarks.md). The interval is the process's; imports running at once
    share one change, put back when the last ends."""
    global _switches_users, _switches_before
    with _switches_lock:
        if not _switches_users:
            _switches_before = sys.getswitchinterval()
            sys.setswitchinterval(SWITCH_INTERVAL)
        _switches_users += 1
    try:
        yield
    finally:
        with _switches_lock:
            _switches_users -= 1
            if not _switches_users:
                sys.setswitchinterval(_switches_before)


def _batches(records: Iterator[SourceRecord], *, grow: bool) -> Iterator[list[SourceRecord]]:
    """``records`` in batches; when the source fails (an API's third page, a file that cannot be read on), the
    records read before it in the batch are still given, then the failure raised."""
    size = BATCH_SIZE
    while True:
        batch: list[SourceRecord] = []
        try:
            for record in islice(records, size):
                batch.append(record)
        except Exception:
            if batch:
                yield batch
            raise
        if not batch:
            return
        yield batch
        if grow:  # a capped intake keeps its batches small, to read little past the cap
            size = min(2 * size, BATCH_GROWTH * BATCH_SIZE)


def _intake_overlapped(run: _Intake, batches: Iterator[list[SourceRecord]], written: Callable[[], None]) -> None:
    """Judge each batch while the database writes the one before, on this thread's connection lent to a
    second thread. Reading and cleaning records is Python; writing them is mostly waiting for the
    database, which lets go of the interpreter meanwhile — so the two take about the time of the longer
    rather than of both. Only one thread uses the connection at any time: the writer between its start
    and the wait for it, this one otherwise, so the batches keep their order and their transactions
    (also inside an outer one, as in the admin's preview)."""
    shared = connections[DEFAULT_DB_ALIAS]
    shared.inc_thread_sharing()
    writing: Future[None] | None = None
    try:
        with _quick_switches(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="cam-intake") as writer:
            try:
                for batch in batches:
                    judged = _judge_batch(run, batch)
                    if writing is not None:
                        writing.result()
                        writing = None
                        written()
                    writing = writer.submit(_write_lent, shared, run, judged)
            finally:
                # The batches judged before a failure of the records (a file that cannot be read on) stay
                # written, as without the second thread.
                if writing is not None:
                    writing.result()
                    written()
    finally:
        shared.dec_thread_sharing()


def _intake_two_writers(run: _Intake, batches: Iterator[list[SourceRecord]], written: Callable[[], None]) -> None:
    """Judge each batch while two threads write the two before it, each on a connection of its own, so that
    the database works on both cores: with one writer, its backend was busy most of the import while this
    thread waited for it. Batches are written in their own transactions, as always; what each did is put on
    the report here, in input order, once it is written (``_record``). Two batches never hold the same
    address (the first-seen table sends a repeat to the report), so they never wait for each other's rows.
    Outside a transaction only: inside one (the admin's preview) its batches must stay in it
    (``_intake_overlapped``)."""
    writers = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"cam-intake-{n}") for n in (1, 2)]
    writing: deque[Future[_Written]] = deque()

    def record_oldest() -> None:
        _record(run, writing.popleft().result())
        written()

    try:
        with _quick_switches():
            try:
                for number, batch in enumerate(batches):
                    judged = _judge_batch(run, batch)
                    if len(writing) == len(writers):
                        record_oldest()  # the writer whose turn it is, done with its batch before
                    writing.append(writers[number % len(writers)].submit(_write_own, run, judged))
                while writing:
                    record_oldest()
            finally:
                # After a failure (a file that cannot be read on, a batch the database refused), the batches
                # written or being written are finished and put on the report, as without the threads.
                while writing:
                    with suppress(Exception):
                        record_oldest()
    finally:
        for writer in writers:
            writer.submit(connections.close_all)  # the thread's own connection
            writer.shutdown(wait=True)


def _write_own(run: _Intake, judged: _Judged) -> _Written:
    try:
        return _write(run, judged, room=None)
    finally:
        if settings.DEBUG:
            reset_queries()  # this thread's connection keeps its queries' text as the caller's does (``written``)


def _write_lent(shared: BaseDatabaseWrapper, run: _Intake, judged: _Judged) -> None:
    connections[DEFAULT_DB_ALIAS] = shared
    try:
        _write_batch(run, judged, room=None)
    finally:
        del connections[DEFAULT_DB_ALIAS]


def _judge(run: _Intake, record: SourceRecord, mapped: Mapping[str, Any]) -> CleanRecord:
    """The record's lead fields cleaned, or ``RejectedRecord`` with the reason and the field it is about."""
    if record.error:
        raise RejectedRecord(record.error)
    # Checked on the whole record, not only the mapped fields: all of it is kept as raw_data.
    unstorable = unstorable_reason(record.data)
    if unstorable:
        raise RejectedRecord(unstorable, field=unstorable_field(record.data))
    # The run has a resolver exactly when addresses are checked for MX records.
    return clean_record(mapped, check_mx=run.dns_resolver is not None, dns_resolver=run.dns_resolver)


def _clean_by_column(run: _Intake, batch: list[SourceRecord]) -> list[CleanRecord | None]:
    """The batch's records cleaned by column (``cam.pipeline.row_cleaning``) where they are a file's rows,
    ``None`` for each record to be judged alone. Not with MX checks, which ask the DNS per address."""
    columns = next((record.data.columns for record in batch if isinstance(record.data, RowValues)), None)
    if run.field_positions is None or run.dns_resolver is not None or columns is None:
        return [None] * len(batch)
    if run.cleaner is None or run.cleaner.columns is not columns:
        run.cleaner = RowCleaner(columns, run.field_positions(columns))
    return run.cleaner.clean(batch)


@dataclass
class _Judged:
    """A batch judged record by record, before the database is asked: its rejections, its good records
    (with each one's new lead and other spellings, see ``_other_spellings``) and its problems so far."""

    rejections: list[HarvestRejection]
    clean: list[tuple[SourceRecord, CleanRecord]]
    new_leads: list[dict[str, Any]]
    staged: StagedRows | None  # the new leads as ``lead_insert.staged_rows`` gives them, when staging
    spellings: list[list[str] | None]
    problems: list[IntakeProblem]


def _judge_batch(run: _Intake, batch: list[SourceRecord]) -> _Judged:
    """Clean each record and find the repeats within the input; no query."""
    campaign, counts = run.campaign, run.report.counts
    rejections: list[HarvestRejection] = []
    clean: list[tuple[SourceRecord, CleanRecord]] = []
    judged: list[tuple[SourceRecord, CleanRecord]] = []  # cleaned, before the repeats are found
    problems: list[IntakeProblem] = []
    for record, cleaned_by_column in zip(batch, _clean_by_column(run, batch), strict=True):
        counts["read"] += 1
        if cleaned_by_column is not None:
            cleaned = cleaned_by_column
        else:
            mapped = run.map_record(record.data)
            try:
                cleaned = _judge(run, record, mapped)
            except RejectedRecord as exc:
                reason, email = storable_text(str(exc)), mapped.get("email")
                # The rejection keeps what the record held, made storable: a NUL must not fail the batch.
                rejections.append(HarvestRejection(
                    campaign=campaign, source=run.source, job_execution=run.execution, line=record.line,
                    reason=reason, email=storable_text(str(email or ""))[:320], raw_data=storable_data(record.data)))
                problems.append(IntakeProblem(record.line, "rejected", reason, exc.field))
                continue
        judged.append((record, cleaned))
    firsts = run.first_seen.first_lines([cleaned.address.email for _, cleaned in judged],
                                        [record.line or 0 for record, _ in judged])
    for (record, cleaned), first in zip(judged, firsts, strict=True):
        if first is None:
            clean.append((record, cleaned))
        else:
            problems.append(IntakeProblem(record.line, "duplicate", f"duplicate: {cleaned.address.email} is "
                                          f"already {run.earlier(first)}", "email"))
    staging = staging_supported()
    new_leads = [_new_lead(record, cleaned, staging=staging) for record, cleaned in clean]
    spellings = [_other_spellings(cleaned.address.email) for _, cleaned in clean]
    return _Judged(rejections=rejections, clean=clean, new_leads=new_leads,
                   staged=staged_rows(new_leads, spellings) if staging else None, spellings=spellings,
                   problems=problems)


@dataclass
class _Written:
    """What writing a batch did, for ``_record`` to put on the run's report."""

    problems: list[IntakeProblem]
    created: dict[int | None, str]  # by line
    updated: dict[int | None, Lead]
    unread: int = 0  # records past the cap: left for a later intake, so not read this time


def _write_batch(run: _Intake, judged: _Judged, *, room: int | None) -> None:
    _record(run, _write(run, judged, room=room))


def _record(run: _Intake, written: _Written) -> None:
    """Put a written batch on the run's report: its counts, its problems, the leads the caller keeps."""
    counts = run.report.counts
    counts["read"] -= written.unread
    counts["created"] += len(written.created)
    counts["updated"] += len(written.updated)
    run.report_problems(written.problems)
    _keep_leads(run, written.created, written.updated)


@transaction.atomic
def _write(run: _Intake, judged: _Judged, *, room: int | None) -> _Written:
    """Write a judged batch in one transaction; it reads ``run``'s settings but changes nothing of it, so
    that two batches can be written at once (``_intake_two_writers``)."""
    campaign, now = run.campaign, timezone.now()
    clean, new_leads, rejections = judged.clean, judged.new_leads, judged.rejections
    problems = list(judged.problems)
    unread = 0
    emails = [c.address.email for _, c in clean]
    staged = staging_supported() and bool(clean)
    # Whether new leads are told from existing ones by the move itself (see below): without a cap, when
    # staging.
    move_first = staged and room is None
    if staged:
        # The batch's good records are staged first, and the suppressions are found by joining them in the
        # database rather than by sending thousands of spellings along.
        assert judged.staged is not None
        leads_stage(judged.staged)
        suppressed = suppressed_addresses(emails, among=(STAGED_ADDRESSES, STAGED_DOMAINS))
    else:
        suppressed = suppressed_addresses(emails)
    if move_first:
        # A lead stored in the records' own spelling is found by the move, which meets it in the unique
        # index anyway; only a lead stored under another spelling (an address not in plain ASCII) is
        # looked up first.
        candidates = {spelling for (_, cleaned), other in zip(clean, judged.spellings, strict=True) if other
                      for spelling in address_spellings(cleaned.address.email)}
    else:
        # By every spelling a lead may have been stored in before addresses were normalised; named one by
        # one, so that the lookup probes the unique index whatever the statistics say of the campaign.
        candidates = {spelling for email in emails for spelling in address_spellings(email)}
    existing = _leads_by_address(campaign, candidates)

    to_create: dict[int | None, str] = {}
    to_update: dict[int | None, Lead] = {}
    skipped: list[int] = []
    for index, (record, cleaned) in enumerate(clean):
        address = cleaned.address
        if address.email in suppressed:
            problems.append(IntakeProblem(record.line, "suppressed", suppressed[address.email], "email"))
            skipped.append(index)
            continue
        lead = existing.get(address.email)
        if lead is None:
            if room is not None and len(to_create) >= room:
                unread += 1
                skipped.append(index)
                continue
            to_create[record.line] = address.email
            continue
        skipped.append(index)
        _judge_existing(run, record, cleaned, lead, to_update, now, problems)

    # A lead added meanwhile by another intake is left to it rather than failing the batch.
    if staged:
        assert judged.staged is not None
        created = leads_move(campaign=campaign, source=run.source, now=now, skip=skipped,
                             raw_names=judged.staged.raw_names, created=move_first)
        if move_first and created is not None and len(created) < len(to_create):
            # The records whose address the move found already a lead: judged against that lead as above.
            found = _leads_by_address(campaign, {email for email in to_create.values() if email not in created})
            for record, cleaned in clean:
                lead = found.get(cleaned.address.email)
                if lead is not None and record.line in to_create:
                    del to_create[record.line]
                    _judge_existing(run, record, cleaned, lead, to_update, now, problems)
    else:
        skipping = set(skipped)
        leads_insert(campaign=campaign, source=run.source, now=now,
                     rows=[row for index, row in enumerate(new_leads) if index not in skipping])
    bulk_update_values(list(to_update.values()), [*PROFILE_FIELDS, "source", "harvested_at", "raw_data",
                                                  "updated_at"])
    HarvestRejection.objects.bulk_create(rejections)
    return _Written(problems=problems, created=to_create, updated=to_update, unread=unread)


def _leads_by_address(campaign: Campaign, spellings: set[str]) -> dict[str, Lead]:
    """The campaign's leads stored under any of ``spellings``, by the one spelling of their address, with the
    fields ``_judge_existing`` compares."""
    if not spellings:
        return {}
    return {address_key(lead.email): lead for lead in Lead.objects.filter(
        campaign=campaign, email__in=spellings).only("pk", "email", *PROFILE_FIELDS).order_by()}


def _judge_existing(run: _Intake, record: SourceRecord, cleaned: CleanRecord, lead: Lead,
                    to_update: dict[int | None, Lead], now: datetime, problems: list[IntakeProblem]) -> None:
    """A record whose address is already ``lead``: a duplicate when it brings nothing new, else the lead takes
    its non-empty new values (and its provenance) and joins ``to_update``."""
    changes = {name: value for name, value in cleaned.fields.items()
               if value not in (None, "") and getattr(lead, name) != value}
    if not changes:
        reason = f"duplicate: {cleaned.address.email} is already a lead in this campaign"
        problems.append(IntakeProblem(record.line, "duplicate", reason, "email"))
        return
    for name, value in changes.items():
        setattr(lead, name, value)
    lead.source, lead.harvested_at, lead.raw_data, lead.updated_at = run.source, now, _jsonable(record.data), now
    to_update[record.line] = lead


def _new_lead(record: SourceRecord, cleaned: CleanRecord, *, staging: bool) -> dict[str, Any]:
    address = cleaned.address
    # A CSV row is staged as its values (``lead_insert.staged_rows``), not made a dictionary first.
    raw = record.data if staging and isinstance(record.data, RowValues) else _jsonable(record.data)
    return {"email": address.email, "is_role_account": address.is_role_account,
            "is_free_mail": address.is_free_mail, "raw_data": raw, **cleaned.fields}


def _other_spellings(email: str) -> list[str] | None:
    """Every spelling, other than ``email`` itself and its domains as ``lead_insert.STAGED_DOMAINS`` splits
    them, under which the address or a domain above it may have been stored: ``None`` for an address
    in ASCII without punycode (or an address literal), which has no other (``cam.addresses``)."""
    if email.isascii() and "xn--" not in email and "[" not in email:
        return None
    domains = domain_and_parents(domain_key(email.rpartition("@")[2]))
    return [*address_spellings(email), *(spelling for domain in domains for spelling in domain_spellings(domain))]


def _keep_leads(run: _Intake, created: dict[int | None, str], updated: dict[int | None, Lead]) -> None:
    """Put the batch's leads the caller keeps on the report, read back whole in one query (an insert that
    ignores conflicts gives no ids back, and the updated ones were read with their profile fields only)."""
    leads = run.report.leads
    room = None if run.leads_kept is None else max(run.leads_kept - len(leads), 0)
    if room == 0:  # the command keeps none: not even a sorted list of the batch
        return
    wanted = [(line, "created", email) for line, email in created.items()]
    wanted += [(line, "updated", lead.email) for line, lead in updated.items()]
    wanted = sorted(wanted, key=lambda item: item[0] or 0)[:room]
    if not wanted:
        return
    stored = {lead.email: lead for lead in Lead.objects.filter(
        campaign=run.campaign, email__in=[email for _, _, email in wanted])}
    for line, outcome, email in wanted:
        if email in stored:
            leads[line or 0] = (outcome, stored[email])


def _jsonable(data: Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(data, RowValues):
        return dict(zip(data.columns.names, data.cells, strict=True))
    if type(data) is dict and set(map(type, data.values())) <= {str} and set(map(type, data)) <= {str}:  # a CSV row
        return data
    return {str(key): value if isinstance(value, str | int | float | bool | list | dict | None) else str(value)
            for key, value in data.items()}
