from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "CAM — client acquisition"
admin.site.site_title = "CAM"
admin.site.index_title = "Back office"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    # The unsubscribe page (/u/<token>/) and Resend's tracking webhook (/webhooks/resend/tracking/).
    path("", include("cam.urls")),
]
