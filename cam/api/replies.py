"""API: replies."""

urlpatterns: list = []
