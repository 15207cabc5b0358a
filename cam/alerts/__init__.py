"""Alerts to people: transports (email, Slack, signed webhook, none), the alert log and its dispatch.

Other parts of CAM call ``alert_queue`` (inside their own transaction, never sending anything) and
the worker cycle calls ``alerts_dispatch``; see docs/alerts.md.
"""
