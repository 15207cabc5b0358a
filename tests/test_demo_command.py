from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from cam.demo import DEMO_CAMPAIGN_NAME
from cam.jobs.runner import lease_name_for
from cam.locks import lease_acquire
from cam.models import Campaign, JobExecution, Lead, Mailbox, MailboxFolder, SecretSettingChange, SequenceStep

pytestmark = pytest.mark.django_db


def run_demo() -> str:
    out = StringIO()
    call_command("cam_demo", stdout=out)
    return out.getvalue()


def test_it_creates_a_campaign_that_can_act_at_once():
    output = run_demo()
    campaign = Campaign.objects.get(name=DEMO_CAMPAIGN_NAME)
    assert campaign.status == Campaign.Status.ACTIVE
    assert (campaign.send_days, campaign.send_start_hour, campaign.send_end_hour) == ([1, 2, 3, 4, 5, 6, 7], 0, 24)
    assert campaign.icp_industries and campaign.icp_title_keywords and campaign.icp_countries
    assert list(campaign.steps.values_list("position", flat=True)) == [1, 2, 3]
    mailbox = campaign.mailboxes.get()
    assert mailbox.provider == Mailbox.Provider.CONSOLE
    leads = Lead.objects.filter(campaign=campaign)
    assert 24 <= leads.count() <= 60
    assert all(lead.email_domain.endswith("example.com") for lead in leads)
    assert leads.filter(is_role_account=True).exists()
    assert f"{leads.count()} leads ({leads.count()} new)" in output


def test_it_is_safe_to_run_twice_and_keeps_staff_edits():
    run_demo()
    campaign = Campaign.objects.get(name=DEMO_CAMPAIGN_NAME)
    SequenceStep.objects.filter(campaign=campaign, position=1).update(subject_template="Edited by staff")
    counts = (Campaign.objects.count(), Mailbox.objects.count(), SequenceStep.objects.count(), Lead.objects.count())
    output = run_demo()
    assert (Campaign.objects.count(), Mailbox.objects.count(), SequenceStep.objects.count(),
            Lead.objects.count()) == counts
    assert SequenceStep.objects.get(campaign=campaign, position=1).subject_template == "Edited by staff"
    assert "(0 new)" in output


def test_it_scores_and_enrols_the_demo_leads_so_it_sends_at_once():
    output = run_demo()
    assert "qualify: COMPLETED" in output and " enrolled" in output and "{'" not in output
    assert Lead.objects.filter(status=Lead.Status.IN_SEQUENCE).count() >= 20


def test_it_points_the_demo_mailbox_at_a_real_smtp_server_and_sends_there(smtp_server):
    out = StringIO()
    call_command("cam_demo", "--smtp", f"{smtp_server.host}:{smtp_server.port}", stdout=out)
    mailbox = Mailbox.objects.get()
    assert (mailbox.provider, mailbox.smtp_host, mailbox.smtp_port, mailbox.smtp_security) == (
        "smtp", smtp_server.host, smtp_server.port, "none")
    call_command("cam_run_job", "outreach", stdout=StringIO())
    enrolled = Lead.objects.filter(current_step=1).count()
    assert enrolled >= 20
    assert len(smtp_server.messages) == enrolled
    assert all(m.parsed["From"].addresses[0].addr_spec == "demo@outreach.example.com" for m in smtp_server.messages)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--smtp", "localhost"], "should look like HOST:PORT"),
        (["--smtp", "localhost:99999"], "should look like HOST:PORT"),
        (["--smtp-user", "bob"], "need --smtp HOST:PORT"),
        (["--smtp", "localhost:25", "--smtp-password-env", "hunter2!"], "NAME of an environment variable"),
        (["--smtp", "localhost:25", "--smtp-password-env", "SECRET_KEY"], "start with CAM_SECRET_"),
    ],
)
def test_it_refuses_bad_smtp_options_clearly(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("cam_demo", *args, stdout=StringIO())


def test_pointing_the_demo_mailbox_at_a_server_is_recorded():
    call_command("cam_demo", "--no-enrol", "--smtp", "127.0.0.1:2525", "--smtp-user", "demo",
                 "--smtp-password-env", "CAM_SECRET_DEMO_SMTP", stdout=StringIO())

    recorded = {(c.field, c.new_value, c.actor) for c in SecretSettingChange.objects.all()}
    assert {("smtp_host", "127.0.0.1", "command:cam_demo"),
            ("smtp_password_env", "CAM_SECRET_DEMO_SMTP", "command:cam_demo")} <= recorded


def test_it_says_a_job_is_running_elsewhere_and_still_enrols():
    # cam_demo runs its jobs through job_request, as cam_run_job does: a score run going on elsewhere makes
    # that job busy (nothing recorded for it), and qualify still runs and is recorded as the command's.
    lease_acquire(name=lease_name_for(job="score", campaign_id=None), holder="other-host:1")
    output = run_demo()
    assert "score: not run. The job score is already running for all campaigns" in output
    assert "qualify: COMPLETED" in output
    assert not JobExecution.objects.filter(job="score").exists()
    assert list(JobExecution.objects.values_list("job", "trigger", "status")) == [
        ("qualify", JobExecution.Trigger.COMMAND, JobExecution.Status.COMPLETED)]


def demo_with_imap(*extra: str) -> str:
    out = StringIO()
    call_command("cam_demo", "--no-enrol", "--imap", "127.0.0.1:1143", "--imap-user", "demo",
                 "--imap-password-env", "CAM_SECRET_DEMO_IMAP", *extra, stdout=out)
    return out.getvalue()


def test_it_reads_the_demo_inbox_from_the_first_poll_on_and_says_so():
    output = demo_with_imap()

    assert MailboxFolder.objects.get(mailbox__from_email="demo@outreach.example.com").backfill_days == 0
    assert ("Replies are read from 127.0.0.1:1143 as demo: its INBOX from the first poll on, mail already there "
            "is left unread.") in output


def test_it_reads_the_last_days_of_the_demo_inbox_when_asked():
    output = demo_with_imap("--imap-backfill-days", "3")

    assert MailboxFolder.objects.get().backfill_days == 3
    assert "its INBOX from the first poll on, plus what it received in the last 3 days." in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--imap", "127.0.0.1:1143", "--imap-user", "demo", "--imap-password-env", "CAM_SECRET_DEMO_IMAP",
          "--imap-backfill-days", "400"], "--imap-backfill-days takes a number of days from 0 to 365, not 400"),
        (["--imap-backfill-days", "3"], "need --imap HOST:PORT"),
    ],
)
def test_it_refuses_bad_imap_options_clearly(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("cam_demo", *args, stdout=StringIO())
