"""API: jobs."""

urlpatterns: list = []
