"""Lead sources: where lead records come from, one small class per kind, chosen through a registry by
``LeadSource.kind`` (``base.py``), and the CSV reading they and the admin's import share (``csv_rows.py``).

Sources read records and store nothing: the harvest (``cam.pipeline.harvest``) turns records into leads.
The ``LeadSource`` model checks a configuration through ``base.config_check`` when it is saved, so this
package imports no model and no other part of CAM but the secrets and egress rules.
"""

from cam.sources.base import LeadSourceBackend, SourceError, SourceRecord, get_backend

__all__ = ["LeadSourceBackend", "SourceError", "SourceRecord", "get_backend"]
