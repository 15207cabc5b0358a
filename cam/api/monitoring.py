"""API: monitoring."""

urlpatterns: list = []
