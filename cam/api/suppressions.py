"""API: suppressions."""

urlpatterns: list = []
