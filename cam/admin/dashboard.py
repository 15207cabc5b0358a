"""The CAM dashboard page in the admin: the same read model the API's metrics endpoint serves."""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse

from cam.dashboard import get_dashboard


def dashboard_view(request):
    dashboard = get_dashboard()
    context = {
        **admin.site.each_context(request),
        "title": "CAM dashboard",
        "dashboard": dashboard,
        "job_metrics": sorted(dashboard["job_metrics"].items()),
    }
    return TemplateResponse(request, "admin/cam/dashboard.html", context)
