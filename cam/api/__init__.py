"""The REST API under /api/cam/: thin DRF doors onto CAM's services and queries.

One module per resource; ``cam.api.urls`` puts them together. Authentication and who made a request,
throttling, pagination, parsing, error shapes, query-string filters and the schema's error responses
are shared (``auth``, ``throttling``, ``pagination``, ``parsers``, ``errors``, ``serializers``,
``filters``, ``schema``).
"""
