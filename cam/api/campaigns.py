"""API: campaigns."""

urlpatterns: list = []
