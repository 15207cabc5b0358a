"""Every list is paginated: ``?page=`` and ``?page_size=`` (at most 500), with the total count.

A page or page size that is not a positive whole number is the client's mistake: 400 naming the
parameter (DRF would answer 404 for ``page=0`` and silently ignore a bad ``page_size``). A page past
the last one is still 404, as in DRF.
"""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


def _positive(value: str) -> bool:
    return value.isascii() and value.isdigit() and int(value) > 0


class CamPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset, request, view=None):
        errors = {}
        page = request.query_params.get(self.page_query_param)
        if page is not None and page not in self.last_page_strings and not _positive(page):
            errors[self.page_query_param] = ["A page number is a whole number from 1 (or 'last')."]
        size = request.query_params.get(self.page_size_query_param)
        if size is not None and not _positive(size):
            errors[self.page_size_query_param] = [f"A page size is a whole number from 1 to {self.max_page_size}."]
        if errors:
            raise ValidationError(errors)
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
            elif parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}  # larger than 500 means 500
        return parameters
