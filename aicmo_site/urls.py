from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from cam.admin.dashboard import dashboard_view

admin.site.site_header = "CAM — client acquisition"
admin.site.site_title = "CAM"
admin.site.index_title = "Back office"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    # Before admin/ so the admin's own catch-all patterns never see it; admin_view keeps it staff-only.
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="cam_dashboard"),
    path("admin/", admin.site.urls),
    path("api/cam/", include("cam.api.urls")),
    # The OpenAPI schema and Swagger UI over it; Swagger UI's files are served from this site (no CDN).
    # The split view serves the page's start-up script as a file (/api/docs/?script=), so the page runs no
    # inline script under the Content-Security-Policy.
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # The unsubscribe page (/u/<token>/) and Resend's tracking webhook (/webhooks/resend/tracking/).
    path("", include("cam.urls")),
]
