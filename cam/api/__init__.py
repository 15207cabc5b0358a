"""The REST API under /api/cam/: thin DRF doors onto CAM's services and queries.

One module per resource; ``cam.api.urls`` puts them together. Authentication, throttling,
pagination, parsing and error shapes are shared (``auth``, ``throttling``, ``pagination``,
``parsers``, ``errors``, ``serializers``).
"""
