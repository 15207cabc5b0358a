"""API: leads."""

urlpatterns: list = []
