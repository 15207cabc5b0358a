"""Replies: polling the mailboxes' IMAP folders and reading what arrives."""
