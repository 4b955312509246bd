"""Talking to an OCI distribution registry, on top of oras-py's `Registry` provider.

We reuse oras for the HTTP session, URL building (`Container`) and the bearer-token exchange, and
override `do_request` because oras' version (a) retries every failure five times with exponential
sleeps (minutes before an unreachable registry is reported, which defeats the offline fallback),
(b) only understands `Bearer` challenges, while plain registries such as docker-registry with
htpasswd send `Basic`, and (c) keeps reusing a token after a 401 for a new scope. Manifests are PUT as the exact bytes
we serialised, because the manifest digest is the sha256 of those bytes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import oras.auth.utils as oras_auth_utils
import oras.container
import oras.provider
import requests

from registry.auth import Credentials, find_credentials
from registry.digest import sha256_digest, split_digest
from registry.errors import AuthError, DigestMismatchError, NotFoundError, RegistryError, UnreachableError
from registry.media import MANIFEST_ACCEPT
from registry.reference import Reference

log = logging.getLogger("lepton.registry")

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 300.0
_CHUNK = 1 << 20
# Transient server-side statuses worth one more try; anything else is reported at once.
_RETRY_STATUSES = frozenset({429, 502, 503, 504})


class RegistryClient(oras.provider.Registry):
    """One repository on one registry, with credentials resolved in Spin's order."""

    def __init__(self, ref: Reference, *, insecure: bool = False, credentials: Credentials | None = None):
        super().__init__(hostname=ref.api_host, insecure=insecure, auth_backend="token")
        self.ref = ref
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
        stream: bool = False,
    ) -> requests.Response:
        headers = dict(headers or {})
        for attempt in (1, 2):
            if self._authorization:
                headers["Authorization"] = self._authorization
            response = self._send(method, url, data, headers, json, stream)
            if response.status_code == 401:
                response.close()
                if not self._answer_challenge(response):
                    raise self._auth_error(response)
                headers["Authorization"] = self._authorization or ""
                if hasattr(data, "seek"):
                    data.seek(0)
                response = self._send(method, url, data, headers, json, stream)
                if response.status_code == 401:
                    response.close()
                    raise self._auth_error(response)
            if response.status_code in _RETRY_STATUSES and attempt == 1 and not hasattr(data, "read"):
                response.close()
                continue
            return response
        return response

    def _send(
        self, method: str, url: str, data: Any, headers: dict[str, str], json: Any, stream: bool
    ) -> requests.Response:
        try:
            return self.session.request(
                method,
                url,
                data=data,
                json=json,
                headers=headers,
                stream=stream,
                verify=self._tls_verify,
                timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise UnreachableError(f"{self.ref}: cannot reach registry {self.ref.api_host}: {exc}") from exc
        except requests.RequestException as exc:
            raise RegistryError(f"{self.ref}: request to {self.ref.api_host} failed: {exc}") from exc

    def _answer_challenge(self, response: requests.Response) -> bool:
        """Turn a 401's WWW-Authenticate into an Authorization header; False if we cannot."""
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
            except requests.RequestException as exc:
                raise UnreachableError(f"{self.ref}: cannot reach the token service {parsed.realm}: {exc}") from exc
            if not token:
                return False
            self._authorization = f"Bearer {token}"
            return True
        return False

    def _auth_error(self, response: requests.Response) -> AuthError:
        if self.credentials is None:
            return AuthError(
                f"{self.ref}: registry {self.ref.api_host} requires authentication and no credentials "
                f"were found for {self.ref.auth_key!r} (run `spin registry login {self.ref.auth_key}` "
                "or `docker login`)"
            )
        return AuthError(
            f"{self.ref}: registry {self.ref.api_host} rejected the credentials for user "
            f"{self.credentials.username!r} from {self.credentials.origin} "
            f"(HTTP {response.status_code}{_registry_message(response)})"
        )

    def _check(self, response: requests.Response, what: str) -> None:
        if response.status_code < 300:
            return
        message = _registry_message(response)
        response.close()
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

    def fetch_manifest(self, target: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of the manifest at a tag or digest."""
        url = self._url(self.container.manifest_url(target))
        response = self.do_request(url, "GET", headers={"Accept": ", ".join(MANIFEST_ACCEPT)})
        self._check(response, f"manifest {target}")
        body = response.content
        digest = sha256_digest(body)
        if ":" in target and digest != target:  # by digest (tags cannot contain ':')
            raise DigestMismatchError(f"{self.ref}: manifest {target} failed verification (got {digest})")
        media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
        return body, media_type, digest

    @contextlib.contextmanager
    def open_blob(self, digest: str) -> Iterator[Iterator[bytes]]:
        split_digest(digest, str(self.ref))
        url = self._url(self.container.get_blob_url(digest))
        response = self.do_request(url, "GET", stream=True)
        try:
            self._check(response, f"blob {digest}")
            yield response.iter_content(chunk_size=_CHUNK)
        except requests.RequestException as exc:
            raise UnreachableError(f"{self.ref}: download of blob {digest} failed: {exc}") from exc
        finally:
            response.close()

    def has_blob(self, digest: str) -> bool:
        response = self.do_request(self._url(self.container.get_blob_url(digest)), "HEAD")
        response.close()
        if response.status_code == 404:
            return False
        self._check(response, f"blob {digest}")
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

    def put_manifest(self, target: str, body: bytes, media_type: str) -> str:
        response = self.do_request(
            self._url(self.container.manifest_url(target)),
            "PUT",
            data=body,
            headers={"Content-Type": media_type},
        )
        self._check(response, f"push of manifest {target}")
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


def _registry_message(response: requests.Response) -> str:
    """The first OCI error message in a response body, as ": CODE message", or ""."""
    try:
        errors = response.json().get("errors") or []
        first = errors[0]
        return f": {first.get('code', '')} {first.get('message', '')}".rstrip()
    except (ValueError, AttributeError, IndexError, TypeError, RuntimeError):
        return ""
