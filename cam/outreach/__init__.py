"""Outreach: who is due, send windows and caps, rendering, unsubscribe links, claiming and sending."""
