"""CAM's public URLs: the unsubscribe page and the provider webhook (the back office is the admin)."""

from django.urls import path

from cam import views

app_name = "cam"

urlpatterns = [
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("webhooks/resend/tracking/", views.resend_tracking_webhook, name="resend_tracking_webhook"),
]
