"""Python spin-sdk hello for benchmarks/runtime_bench.py (the issue's "Python spin-sdk hello")."""

from spin_sdk import http
from spin_sdk.http import Request, Response


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        return Response(200, {"content-type": "text/plain"}, b"Hello from Python!\n")
