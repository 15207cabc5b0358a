"""The CAM dashboard page in the admin: the same read model the API's metrics endpoint serves."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from cam.dashboard import get_dashboard
from cam.models import JobExecution


def dashboard_view(request):
    # The page shows job runs, their errors and the worker's state: it asks what the job runs' own list
    # asks (view or change job execution), as GET /api/cam/metrics/ does; the index hides the link too.
    if not admin.site.get_model_admin(JobExecution).has_view_permission(request):
        raise PermissionDenied
    dashboard = get_dashboard()
    context = {
        **admin.site.each_context(request),
        "title": "CAM dashboard",
        "dashboard": dashboard,
        "job_metrics": sorted(dashboard["job_metrics"].items()),
    }
    return TemplateResponse(request, "admin/cam/dashboard.html", context)
