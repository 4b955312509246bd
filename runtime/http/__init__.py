"""The HTTP trigger: from a routed request to a guest's response, with Spin's semantics.

- ``routes.py``: Spin's route matching inside an app (pure).
- ``spin_headers.py``: spin-* request headers, mount-prefix stripping, Spin's well-known
  endpoints (pure).
- ``app.py``: RunningApp.handle, the request's way through one app.
- ``scheduling.py``: inline on the event loop or on a worker thread; per-app thread cap.
- ``responses.py``: the host's own responses and the mapping of guest faults to status codes.
- ``executors/``: how a component is entered: wasi:http/incoming-handler (``wasi_http``),
  Spin 2's fermyon:spin/inbound-http (``inbound_http``), WAGI (``wagi``, CGI rules in
  ``wagi_cgi``), Spin 1.x core modules (``spin1``).
"""
