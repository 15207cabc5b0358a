"""A job run's counts, errors and duration in words (cam.jobs.summary)."""

import pytest

from cam.jobs.summary import counts_text, duration_text, errors_lines, errors_text


def test_it_reads_a_harvest_as_what_became_of_the_records():
    counts = {"campaigns": 2, "read": 1204, "created": 1150, "updated": 12, "duplicate": 30, "suppressed": 2,
              "rejected": 10, "sources": 2, "sources_failed": 0}

    assert counts_text(counts) == ("1,204 read: 1,150 created, 12 updated, 30 duplicate, 2 suppressed, "
                                   "10 rejected, 2 campaigns, 2 sources")


def test_it_reads_the_worker_cycle_step_by_step_leaving_out_what_is_zero():
    counts = {
        "steps": {
            "send": {"recovered_requeued": 0, "planned": 27, "mailboxes": 1, "sent": 27, "failed": 0},
            "poll": {"mailboxes": 2, "fetched": 3, "stored": 3, "skipped_duplicates": 0, "failed": 1},
            "replies": {"processed": 3, "errors": 0, "positive": 1, "unmatched": 2, "resumed": 0},
            "no_reply": {"nurture": 0, "dead": 0},
            "alerts": {"sent": 2, "failed_transient": 0},
        },
        "errors": {"poll": "mailbox Sales 2: login refused"},
        "ended_early": "",
    }

    assert counts_text(counts) == ("send: 27 planned, 27 sent, 1 mailbox · poll: 3 fetched, 3 stored, 1 failed, "
                                   "2 mailboxes · replies: 3 read: 1 positive, 2 unmatched · alerts: 2 sent")
    assert errors_lines(counts, "poll: mailbox Sales 2: login refused") == ["poll: mailbox Sales 2: login refused"]


def test_it_reads_the_same_whatever_order_the_keys_come_back_in():
    # PostgreSQL's jsonb hands an object's keys back in an order of its own (shorter keys first).
    counts = {"steps": {"send": {"planned": 2, "sent": 2, "failed": 1}, "poll": {"fetched": 3, "failed": 1}},
              "errors": {"send": "mailbox A: 421", "poll": "mailbox B: login refused"}}
    shuffled = {"errors": {"poll": "mailbox B: login refused", "send": "mailbox A: 421"},
                "steps": {"poll": {"failed": 1, "fetched": 3}, "send": {"sent": 2, "failed": 1, "planned": 2}}}

    text = "send: 2 planned, 2 sent, 1 failed · poll: 3 fetched, 1 failed"
    assert counts_text(shuffled) == counts_text(counts) == text
    assert errors_lines(shuffled) == errors_lines(counts) == ["send: mailbox A: 421", "poll: mailbox B: login refused"]


def test_it_says_why_a_cycle_ended_early_in_words():
    counts = {"steps": {"send": {"sent": 1}}, "errors": {"lease": "lease worker_cycle lost before poll"},
              "ended_early": "lease worker_cycle lost before poll"}

    assert counts_text(counts) == "send: 1 sent · ended early: lease worker_cycle lost before poll"
    assert errors_text(counts) == "lease: lease worker_cycle lost before poll"


def test_it_groups_the_inbox_jobs_parts_by_step():
    counts = {"poll_mailboxes": 1, "poll_fetched": 3, "poll_failed": 0, "replies_processed": 3,
              "replies_positive": 2, "resumed": 1, "alerts_sent": 2}

    assert counts_text(counts) == ("1 resumed · poll: 3 fetched, 1 mailbox · replies: 3 read: 2 positive · "
                                   "alerts: 2 sent")


@pytest.mark.parametrize(("counts", "text"), [
    ({"scored": 40, "changed": 3, "campaigns": 1}, "40 scored: 3 changed, 1 campaign"),
    ({"enrolled": 5, "qualified_not_enrolled": 0, "disqualified": 2, "campaigns": 1},
     "5 enrolled, 2 disqualified, 1 campaign"),
    ({"nurture": 4, "dead": 1}, "4 moved to nurture, 1 marked dead"),
    ({"runs_failed": 1, "workers_lost": 0, "leases_released": 2}, "1 dead runs failed, 2 leases released"),
    ({"scored": 0, "changed": 0, "campaigns": 0}, ""),
])
def test_each_job_reads_as_words(counts, text):
    assert counts_text(counts) == text


def test_unknown_keys_read_as_key_and_value_never_as_a_dict():
    text = counts_text({"new_thing": 3, "nested": {"a_b": 1, "c": [1, 2]}, "problems": ["mailbox X: refused"],
                        "flag": True, "note": "hi"})

    assert text == "flag: yes, nested: a b: 1, c: 1; 2, new thing: 3, note: hi, problems: mailbox X: refused"
    assert "{" not in text and "[" not in text


def test_nothing_reads_as_nothing():
    assert counts_text({}) == counts_text(None) == ""
    assert errors_lines({}, "") == [] and errors_lines(None) == []


def test_a_runs_error_without_step_errors_reads_line_by_line():
    assert errors_lines({"sent": 1}, "ValueError: max_leads must be a whole number\n\n") == [
        "ValueError: max_leads must be a whole number"]


@pytest.mark.parametrize(("seconds", "text"), [
    (0.45, "450 ms"), (3.2, "3.2 s"), (3.0, "3 s"), (125, "2 min 5 s"), (120, "2 min"), (7300, "2 h 1 min"),
    (None, "—"),
])
def test_durations_read_as_people_say_them(seconds, text):
    assert duration_text(seconds) == text
