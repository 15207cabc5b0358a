"""Sending-domain health: what DNS says about the SPF, DKIM and DMARC of the domains mailboxes send from."""
