"""router/: routes.toml, the routing table, the ASGI app, reconcile/hot swap and the CLI."""
