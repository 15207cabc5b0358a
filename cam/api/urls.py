"""/api/cam/…: each resource module brings its own routes."""

from django.urls import include, path

from cam.api import campaigns, domains, jobs, leads, monitoring, replies, schema, suppressions

app_name = "cam-api"
__all__ = ["schema"]  # imported for its schema extensions

urlpatterns = [
    path("", include(monitoring.urlpatterns)),  # metrics, health, worker, alerts
    path("", include(campaigns.urlpatterns)),  # campaigns, their steps, pause/resume, metrics
    path("", include(leads.urlpatterns)),
    path("", include(replies.urlpatterns)),
    path("", include(suppressions.urlpatterns)),
    path("", include(jobs.urlpatterns)),
    path("", include(domains.urlpatterns)),  # sending domains, check/override/hold
]
