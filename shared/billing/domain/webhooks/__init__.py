"""Webhooks as pure rules: what an outbox event says, where it may go, how it is signed and retried."""
