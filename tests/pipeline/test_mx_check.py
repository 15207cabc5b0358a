"""With AICMO_CAM_VERIFY_MX on, harvest asks DNS (a real server on loopback) whether a domain takes mail."""

import pytest

from cam.models import HarvestRejection, Lead
from cam.pipeline.intake import leads_intake
from cam.sources import SourceRecord
from cam.sources.base import LeadSourceBackend
from tests.factories import CampaignFactory
from tests.servers.dns import MxServer


@pytest.fixture
def dns_server(settings):
    server = MxServer({"brightlane.example.com": "mx1.brightlane.example.com"}).start()
    settings.AICMO_CAM_VERIFY_MX = True
    settings.AICMO_CAM_DNS_NAMESERVERS = [(server.host, server.port)]
    settings.AICMO_CAM_DNS_TIMEOUT_SECONDS = 2
    yield server
    server.stop()


def harvest(campaign, *emails):
    records = [SourceRecord(line=n + 2, data={"email": email}) for n, email in enumerate(emails)]
    return leads_intake(campaign=campaign, records=records, map_record=LeadSourceBackend({}).map_record).counts


@pytest.mark.django_db
def test_it_rejects_an_address_whose_domain_does_not_exist_and_keeps_the_one_that_takes_mail(dns_server):
    campaign = CampaignFactory()
    counts = harvest(campaign, "anna@brightlane.example.com", "bob@brightlane.example.com",
                     "carl@nowhere-at-all.example.com")
    assert (counts["created"], counts["rejected"]) == (2, 1)
    assert set(Lead.objects.values_list("email", flat=True)) == {"anna@brightlane.example.com",
                                                                 "bob@brightlane.example.com"}
    rejection = HarvestRejection.objects.get()
    assert (rejection.line, rejection.email) == (4, "carl@nowhere-at-all.example.com")
    assert "does not exist" in rejection.reason
    # Answers are cached for the run: the domain taking mail was asked about once.
    assert dns_server.queries.count("MX brightlane.example.com") == 1


@pytest.mark.django_db
def test_it_checks_syntax_only_by_default(settings):
    settings.AICMO_CAM_VERIFY_MX = False
    counts = harvest(CampaignFactory(), "carl@nowhere-at-all.example.com")
    assert counts["created"] == 1
