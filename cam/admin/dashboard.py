"""The CAM dashboard: ``/admin/`` opens on it (django-unfold's DASHBOARD_CALLBACK fills the index page's
context) and ``/admin/dashboard/`` shows the same page. It reads what the API's metrics endpoint serves."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied

from cam.dashboard import get_dashboard
from cam.models import JobExecution


def may_view_dashboard(request) -> bool:
    # The page shows job runs, their errors and the worker's state: it asks what the job runs' own list
    # asks (view or change job execution), as GET /api/cam/metrics/ does.
    return admin.site.get_model_admin(JobExecution).has_view_permission(request)


def dashboard_callback(request, context: dict[str, Any]) -> dict[str, Any]:
    """The index page's context: the dashboard for who may see it, the app list for everyone else."""
    if not may_view_dashboard(request):
        return context
    dashboard = get_dashboard()
    return {
        **context,
        "title": "Dashboard",
        "cam_dashboard": True,
        "dashboard": dashboard,
        "job_metrics": sorted(dashboard["job_metrics"].items()),
    }


def dashboard_view(request):
    """The dashboard's own address, kept for bookmarks and links in alerts: the same page as the index."""
    if not may_view_dashboard(request):
        raise PermissionDenied
    return admin.site.index(request)
