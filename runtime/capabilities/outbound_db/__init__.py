"""Shared by the outbound database capabilities (redis/, postgres/, mysql/, mqtt/): connection
pools per app, deadline enforcement for blocking client calls, the allow-list check, and the
rdbms WIT value helpers."""
