"""The jobs CAM runs, registered by name. Each is thin: it picks the campaigns and calls a service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cam.alerts.service import alerts_dispatch
from cam.followup import leads_no_reply_timeout, leads_resume_paused
from cam.inbox.polling import inboxes_poll
from cam.inbox.processing import replies_process
from cam.jobs.cycle import cycle_job
from cam.jobs.recovery import watchdog_run
from cam.jobs.registry import JobContext, job
from cam.models import Campaign, JobExecution
from cam.outreach.planning import outreach_plan
from cam.outreach.sending import outbound_recover_stuck, outreach_send
from cam.pipeline.harvest import harvest_campaign
from cam.pipeline.qualify import leads_qualify
from cam.pipeline.scoring import leads_score

# Jobs for "all campaigns" work on these; a campaign named explicitly is worked on whatever its status.
WORKING_STATUSES = (Campaign.Status.ACTIVE, Campaign.Status.DEGRADED)


def _per_campaign(context: JobContext, work: Callable[[Campaign], dict[str, Any]]) -> dict[str, Any]:
    campaigns = [context.campaign] if context.campaign else Campaign.objects.filter(status__in=WORKING_STATUSES)
    totals: dict[str, Any] = {"campaigns": 0}
    for campaign in campaigns:
        counts = work(campaign)
        totals["campaigns"] += 1
        for key, value in counts.items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
            elif isinstance(value, list):
                totals.setdefault(key, []).extend(value)
        context.renew_lease()
    return totals


@job("harvest", description="Read every enabled lead source into leads.", campaign="optional",
     params=("max_leads",))
def harvest(context: JobContext) -> dict[str, Any]:
    max_leads = context.params.get("max_leads")
    if max_leads is not None and (not isinstance(max_leads, int) or isinstance(max_leads, bool) or max_leads < 1):
        raise ValueError(f"max_leads must be a whole number of at least 1, not {max_leads!r}.")
    return _per_campaign(context, lambda campaign: harvest_campaign(
        campaign=campaign, execution=context.execution, max_leads=max_leads))


@job("score", description="Score uncontacted leads against the campaign's ideal-customer profile.",
     campaign="optional", inline_allowed=True)
def score(context: JobContext) -> dict[str, Any]:
    return _per_campaign(context, lambda campaign: leads_score(campaign=campaign))


@job("qualify", description="Enrol leads that meet the minimum score; set the others aside with the reason.",
     campaign="optional", inline_allowed=True)
def qualify(context: JobContext) -> dict[str, Any]:
    return _per_campaign(context, lambda campaign: leads_qualify(campaign=campaign))


@job("outreach", description="Send due emails: recover interrupted sends, plan who gets what, then send.",
     campaign="optional")
def outreach(context: JobContext) -> dict[str, Any]:
    # A schedule fans the sending out to the cluster, one task per mailbox, so several workers send
    # at once; a person running it by hand sees the sends happen in this run.
    inline = context.params.get("inline", context.execution.trigger != JobExecution.Trigger.SCHEDULE)
    counts: dict[str, Any] = {}
    counts.update(outbound_recover_stuck())
    context.renew_lease()
    counts.update(outreach_plan(campaign=context.campaign))
    context.renew_lease()
    counts.update(outreach_send(inline=bool(inline)))
    return counts


@job("inbox", description="Poll the IMAP inboxes, read new replies, apply follow-ups, resume paused leads, "
                          "send alerts.")
def inbox(context: JobContext) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    counts.update({f"poll_{key}": value for key, value in inboxes_poll().items()})
    context.renew_lease()
    counts.update({f"replies_{key}": value for key, value in replies_process().items()})
    counts["resumed"] = leads_resume_paused()
    # Warm replies are told to a person in the same run that read them.
    counts.update({f"alerts_{key}": value for key, value in alerts_dispatch().items()})
    return counts


@job("no_reply_timeouts", description="Move leads that never answered the last step to nurture or dead.",
     inline_allowed=True)
def no_reply_timeouts(context: JobContext) -> dict[str, Any]:
    return leads_no_reply_timeout()


@job("worker_cycle", description="The autonomous worker's cycle: send, poll, replies, no-reply timeouts, metrics, "
                                 "rules, alerts, run retention; "
                                 "each step isolated, the heartbeat updated.",
     # Run in a web process, the cycle would write its heartbeat under that process's worker id, and the
     # health checks would report a live worker where no cluster runs.
     queue_only_because="it writes the worker heartbeat, which must come from the cluster")
def worker_cycle(context: JobContext) -> dict[str, Any]:
    return cycle_job(context)


@job("watchdog", description="Put right what dead workers left (runs, heartbeats, leases, claimed emails); "
                             "alert once per outage when no worker has reported for three intervals.",
     inline_allowed=True)
def watchdog(context: JobContext) -> dict[str, Any]:
    return watchdog_run()
