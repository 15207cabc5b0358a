"""Lead sources: one small class per kind, chosen through a registry by ``LeadSource.kind``."""

from cam.pipeline.sources.base import LeadSourceBackend, SourceError, SourceRecord, get_backend

__all__ = ["LeadSourceBackend", "SourceError", "SourceRecord", "get_backend"]
