"""Talking to an OCI distribution registry, on top of oras-py's `Registry` provider.

We reuse oras for the HTTP session, URL building (`Container`) and the bearer-token exchange, and
override `do_request` because oras' version (a) retries every failure five times with exponential
sleeps (minutes before an unreachable registry is reported, which defeats the offline fallback),
(b) only understands `Bearer` challenges, while plain registries such as docker-registry with
htpasswd send `Basic`, (c) keeps reusing a token after a 401 for a new scope, and (d) sends requests
without a timeout. Manifests are PUT as the exact bytes
we serialised, because the manifest digest is the sha256 of those bytes.

Every request is bounded (registry/limits.py): connect and read timeouts, never past the deadline of
the whole operation, which is also checked between the reads of a body. Bodies are read one
`recv` at a time (urllib3's read1) and never beyond the size the caller allows, so a registry that
announces or streams more than a manifest cap or a blob's declared size is cut off at that size.
"""

from __future__ import annotations

import contextlib
import json as json_module
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import oras.auth.utils as oras_auth_utils
import oras.container
import oras.provider
import requests
import requests.adapters
import urllib3.exceptions

from registry.auth import Credentials, find_credentials
from registry.digest import sha256_digest, split_digest
from registry.errors import (
    AuthError,
    DigestMismatchError,
    NotFoundError,
    RegistryError,
    RegistryTimeoutError,
    TooLargeError,
    UnreachableError,
)
from registry.limits import DEFAULT_LIMITS, Deadline, RegistryLimits, describe_size
from registry.media import MANIFEST_ACCEPT
from registry.reference import Reference

log = logging.getLogger("lepton.registry")

_CHUNK = 1 << 20
_READ_SIZE = 256 * 1024  # at most this much per recv: the deadline is checked between reads
_ERROR_BODY_LIMIT = 64 * 1024  # of an error response, enough for the OCI error JSON
# The digest covers the bytes as stored: no content coding, so nothing is decoded on our side.
_IDENTITY = {"Accept-Encoding": "identity"}
# Transient server-side statuses worth one more try; anything else is reported at once.
_RETRY_STATUSES = frozenset({429, 502, 503, 504})


class RegistryClient(oras.provider.Registry):
    """One repository on one registry, with credentials resolved in Spin's order."""

    def __init__(
        self,
        ref: Reference,
        *,
        insecure: bool = False,
        credentials: Credentials | None = None,
        limits: RegistryLimits = DEFAULT_LIMITS,
        deadline: Deadline | None = None,
    ):
        super().__init__(hostname=ref.api_host, insecure=insecure, auth_backend="token")
        self.ref = ref
        self.limits = limits
        self.deadline = deadline if deadline is not None else Deadline(limits, str(ref))
        # oras' token exchange uses this session without a timeout; the adapter supplies ours.
        adapter = _BoundedAdapter(self.deadline)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.credentials = credentials if credentials is not None else find_credentials(ref.auth_key)
        if self.credentials is not None:
            self.auth.set_basic_auth(self.credentials.username, self.credentials.password)
        self._authorization: str | None = None  # header value that last worked
        self.container = oras.container.Container(
            f"{ref.api_host}/{ref.repository}:{ref.tag or 'latest'}", registry=ref.api_host
        )

    def __str__(self) -> str:
        return f"[lepton registry client {self.ref}]"

    # --- transport ---------------------------------------------------------------------------

    def do_request(
        self,
        url: str,
        method: str = "GET",
        data: Any = None,
        headers: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        stream: bool = False,  # ignored: every response is streamed (see _send)
    ) -> requests.Response:
        headers = dict(headers or {})
        for attempt in (1, 2):
            if self._authorization:
                headers["Authorization"] = self._authorization
            response = self._send(method, url, data, headers, json)
            if response.status_code == 401:
                if not self._answer_challenge(response):
                    raise self._auth_error(response)
                response.close()
                headers["Authorization"] = self._authorization or ""
                if hasattr(data, "seek"):
                    data.seek(0)
                response = self._send(method, url, data, headers, json)
                if response.status_code == 401:
                    raise self._auth_error(response)
            if response.status_code in _RETRY_STATUSES and attempt == 1 and not hasattr(data, "read"):
                response.close()
                continue
            return response
        return response

    def _send(self, method: str, url: str, data: Any, headers: dict[str, str], json: Any) -> requests.Response:
        host = self.ref.api_host
        self.deadline.check(f"{method} {url}")
        connect, read = self.deadline.timeouts()
        try:
            return self.session.request(
                method,
                url,
                data=data,
                json=json,
                headers=headers,
                # Always streamed: bodies are read by _read_body, bounded in size and time.
                stream=True,
                verify=self._tls_verify,
                timeout=(connect, read),
            )
        except requests.ConnectTimeout as exc:
            raise RegistryTimeoutError(
                f"{self.ref}: cannot reach registry {host}: no connection within {connect:g}s"
                f"{self._which_limit(connect, self.limits.connect_timeout_s, 'registry_connect_timeout')}"
            ) from exc
        except requests.ReadTimeout as exc:
            raise RegistryTimeoutError(
                f"{self.ref}: registry {host} accepted the connection but did not answer within {read:g}s"
                f"{self._which_limit(read, self.limits.read_timeout_s, 'registry_read_timeout')}"
            ) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise UnreachableError(f"{self.ref}: cannot reach registry {host}: {exc}") from exc
        except requests.RequestException as exc:
            raise RegistryError(f"{self.ref}: request to {host} failed: {exc}") from exc

    def _which_limit(self, used: float, configured: float, name: str) -> str:
        """Which setting cut a request short: its own timeout, or the operation's deadline."""
        if used < configured:
            return f" (the rest of the {self.limits.deadline_s:g}s registry_deadline)"
        return f" ({name})"

    def _read_body(self, response: requests.Response, limit: int, what: str) -> Iterator[bytes]:
        """A body in pieces of at most one recv each, the deadline checked between them. Stops after
        `limit + 1` bytes: one more than allowed, so the caller can tell the body is too large
        without the rest being read."""
        raw = response.raw
        read = getattr(raw, "read1", None) or raw.read  # read1: urllib3 >= 2 (read waits for all `amt`)
        left = limit + 1
        while left > 0:
            self.deadline.check(what)
            try:
                chunk = read(min(_READ_SIZE, left), decode_content=False)
            except urllib3.exceptions.ReadTimeoutError as exc:
                raise RegistryTimeoutError(
                    f"{self.ref}: registry {self.ref.api_host} stopped sending {what} "
                    "(silent for the registry_read_timeout, or the registry_deadline ran out)"
                ) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise UnreachableError(f"{self.ref}: download of {what} broke off: {exc}") from exc
            if not chunk:
                raw.release_conn()  # the whole body was read: the connection can be reused
                return
            left -= len(chunk)
            yield chunk

    def _drain(self, response: requests.Response) -> None:
        """Finish a response whose body we do not need (reusing the connection if it is short)."""
        try:
            for _ in self._read_body(response, _ERROR_BODY_LIMIT, "a response"):
                pass
        except RegistryError:
            pass
        finally:
            response.close()

    def _error_message(self, response: requests.Response) -> str:
        """The first OCI error message of an error response, as ": CODE message", or ""."""
        try:
            body = b"".join(self._read_body(response, _ERROR_BODY_LIMIT, "an error response"))
        except RegistryError:
            return ""
        finally:
            response.close()
        return _registry_message(body)

    def _answer_challenge(self, response: requests.Response) -> bool:
        """Turn a 401's WWW-Authenticate into an Authorization header; False if we cannot."""
        self.deadline.check("the authentication challenge")
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if self.credentials is None:
                return False
            self._authorization = f"Basic {self.credentials.basic_token()}"
            return True
        if scheme == "bearer":
            # Always a fresh token: the challenge names the scope this request needs (pull vs
            # push, another repository), and a token we already hold may have expired.
            parsed = oras_auth_utils.parse_auth_header(challenge)
            if not parsed.realm:
                return False
            try:
                if self.credentials is not None:
                    token = self.auth.request_token(parsed)
                else:
                    token = self.auth.request_anonymous_token(parsed)
            except requests.Timeout as exc:
                raise RegistryTimeoutError(
                    f"{self.ref}: the token service {parsed.realm} did not answer in time: {exc}"
                ) from exc
            except requests.RequestException as exc:
                raise UnreachableError(f"{self.ref}: cannot reach the token service {parsed.realm}: {exc}") from exc
            if not token:
                return False
            self._authorization = f"Bearer {token}"
            return True
        return False

    def _auth_error(self, response: requests.Response) -> AuthError:
        message = self._error_message(response)
        if self.credentials is None:
            return AuthError(
                f"{self.ref}: registry {self.ref.api_host} requires authentication and no credentials "
                f"were found for {self.ref.auth_key!r} (run `spin registry login {self.ref.auth_key}` "
                "or `docker login`)"
            )
        return AuthError(
            f"{self.ref}: registry {self.ref.api_host} rejected the credentials for user "
            f"{self.credentials.username!r} from {self.credentials.origin} "
            f"(HTTP {response.status_code}{message})"
        )

    def _check(self, response: requests.Response, what: str) -> None:
        if response.status_code < 300:
            return
        message = self._error_message(response)
        if response.status_code == 404:
            raise NotFoundError(f"{self.ref}: {what} not found in registry {self.ref.api_host}{message}")
        if response.status_code == 403:
            raise AuthError(f"{self.ref}: access to {what} denied by {self.ref.api_host}{message}")
        raise RegistryError(
            f"{self.ref}: {what}: registry {self.ref.api_host} answered HTTP {response.status_code}{message}"
        )

    def _url(self, path: str) -> str:
        return f"{self.prefix}://{path}"

    # --- operations --------------------------------------------------------------------------

    def fetch_manifest(self, target: str, size: int | None = None) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of the manifest at a tag or digest; `size`: what the
        descriptor pointing at it declares, if any. Larger than max_manifest_bytes is refused
        (before the download when the size is declared or announced)."""
        cap = self.limits.max_manifest_bytes
        what = f"manifest {target}"
        if size is not None and size > cap:
            raise TooLargeError(f"{self.ref}: {what} is declared as {size} bytes, over the {describe_size(cap)} limit "
                                "(max_manifest_size); not downloaded")
        limit = cap if size is None else size
        url = self._url(self.container.manifest_url(target))
        response = self.do_request(
            url, "GET", headers={"Accept": ", ".join(MANIFEST_ACCEPT), **_IDENTITY}, stream=True
        )
        try:
            self._check(response, what)
            announced = _content_length(response)
            if announced is not None and announced > limit:
                raise self._too_large(what, limit, size, f"the registry announces {announced} bytes")
            body = b"".join(self._read_body(response, limit, what))
        finally:
            response.close()
        if len(body) > limit:
            raise self._too_large(what, limit, size, f"the registry sent more than {limit} bytes")
        digest = sha256_digest(body)
        if ":" in target and digest != target:  # by digest (tags cannot contain ':')
            raise DigestMismatchError(f"{self.ref}: manifest {target} failed verification (got {digest})")
        media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
        return body, media_type, digest

    def _too_large(self, what: str, limit: int, declared: int | None, detail: str) -> TooLargeError:
        if declared is not None:
            return TooLargeError(f"{self.ref}: {what} is larger than the {declared} bytes its descriptor "
                                 f"declares ({detail}); stopped there")
        return TooLargeError(f"{self.ref}: {what} is larger than the {describe_size(limit)} limit "
                             f"(max_manifest_size; {detail}); stopped there")

    @contextlib.contextmanager
    def open_blob(self, digest: str, size: int | None = None) -> Iterator[Iterator[bytes]]:
        """The blob's bytes, never more than `size` (its declared size) + 1, or max_blob_bytes + 1
        when no size is known: the caller's digest check reports the overrun."""
        split_digest(digest, str(self.ref))
        what = f"blob {digest}"
        limit = size if size is not None else self.limits.max_blob_bytes
        url = self._url(self.container.get_blob_url(digest))
        response = self.do_request(url, "GET", headers=dict(_IDENTITY), stream=True)
        try:
            self._check(response, what)
            announced = _content_length(response)
            if announced is not None and announced > limit:
                raise TooLargeError(
                    f"{self.ref}: registry {self.ref.api_host} announces {announced} bytes for {what}, "
                    + (f"whose descriptor declares {size}" if size is not None
                       else f"over the {describe_size(limit)} limit (max_blob_size)")
                    + "; not downloaded"
                )
            yield self._read_body(response, limit, what)
        finally:
            response.close()

    def has_blob(self, digest: str) -> bool:
        response = self.do_request(self._url(self.container.get_blob_url(digest)), "HEAD")
        if response.status_code == 404:
            response.close()
            return False
        self._check(response, f"blob {digest}")
        self._drain(response)
        return True

    def upload_blob(
        self, digest: str, path: Path, progress: Callable[[int], None] | None = None
    ) -> None:
        """Monolithic upload (POST for a session, then PUT with ?digest=), streamed from disk."""
        if self.has_blob(digest):
            if progress is not None:
                progress(path.stat().st_size)
            return
        start = self.do_request(
            self._url(self.container.upload_blob_url()),
            "POST",
            headers={"Content-Length": "0", "Content-Type": "application/octet-stream"},
        )
        self._check(start, "blob upload session")
        self._drain(start)
        location = self._get_location(start, self.container)
        if not location:
            raise RegistryError(f"{self.ref}: registry {self.ref.api_host} gave no upload location")
        separator = "&" if "?" in location else "?"
        size = path.stat().st_size
        with path.open("rb") as f:
            response = self.do_request(
                f"{location}{separator}digest={digest}",
                "PUT",
                data=_ProgressReader(f, progress),
                headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
            )
        self._check(response, f"upload of blob {digest}")
        self._drain(response)

    def put_manifest(self, target: str, body: bytes, media_type: str) -> str:
        response = self.do_request(
            self._url(self.container.manifest_url(target)),
            "PUT",
            data=body,
            headers={"Content-Type": media_type},
        )
        self._check(response, f"push of manifest {target}")
        self._drain(response)
        return response.headers.get("Docker-Content-Digest") or sha256_digest(body)


class _ProgressReader:
    """File wrapper that reports bytes as requests streams them out."""

    def __init__(self, f: Any, progress: Callable[[int], None] | None) -> None:
        self._f = f
        self._progress = progress
        self._size = int(f.seek(0, 2))
        f.seek(0)

    def __len__(self) -> int:  # lets requests send Content-Length instead of chunked encoding
        return self._size

    def read(self, size: int = -1) -> bytes:
        chunk: bytes = self._f.read(size if size and size > 0 else _CHUNK)
        if chunk and self._progress is not None:
            self._progress(len(chunk))
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._f.seek(offset, whence))

    def __iter__(self) -> Iterator[bytes]:
        return iter(lambda: self.read(_CHUNK), b"")


class _BoundedAdapter(requests.adapters.HTTPAdapter):
    """Gives a request sent without a timeout (oras' token exchange) the operation's timeouts."""

    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def send(self, request: Any, stream: bool = False, timeout: Any = None, verify: Any = True,
             cert: Any = None, proxies: Any = None) -> requests.Response:
        if timeout is None:
            self._deadline.check(f"{request.method} {request.url}")
            timeout = self._deadline.timeouts()
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)


def _content_length(response: requests.Response) -> int | None:
    try:
        value = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _registry_message(body: bytes) -> str:
    """The first OCI error message in a response body, as ": CODE message", or ""."""
    try:
        errors = json_module.loads(body).get("errors") or []
        first = errors[0]
        return f": {first.get('code', '')} {first.get('message', '')}".rstrip()
    except (ValueError, AttributeError, IndexError, TypeError, KeyError):
        return ""
