"""router/: routes.toml, the routing table, the ASGI app, reconcile/hot swap and the CLI.

Modules, one concern each (pure ones first):

- config.py, tomlpos.py, units.py: routes.toml schema and validation (errors name file, line, app,
  field); durations and sizes.
- table.py: the routing table and Host normalisation (pure data, pure lookup).
- reconcile.py: desired vs running apps -> what to load, keep, retire (pure).
- proxy.py: trusted-proxy handling of X-Forwarded-* (pure).
- versions.py: one loaded app version, reference-counted by in-flight requests.
- loader.py: registry pull + runtime load of one app.
- manager.py: the control plane: reload, background loads, atomic table swap.
- heap.py: keeps loaded apps out of the cyclic GC's full collections.
- dispatch.py: the data plane: ASGI request -> table -> runtime, streaming both ways.
- app.py: the Quart app on the shared port (lifespan, reserved /.well-known/lepton/ paths).
- admin.py, metrics.py: the admin listener (HTML, JSON, Prometheus).
- watch.py: routes.toml watcher and SIGHUP.
- serve.py: hypercorn listeners, workers supervisor.
- edit.py, cli.py: `lepton-router` commands.
"""
