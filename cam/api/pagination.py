"""Every list is paginated: ``?page=`` and ``?page_size=`` (at most 500), with the total count."""

from rest_framework.pagination import PageNumberPagination


class CamPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
