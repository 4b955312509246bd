"""Shared by several capabilities: load errors, allowed_outbound_hosts, label-scoped storage, per-app objects, WIT values."""
