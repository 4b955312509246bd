"""Errors raised by registry/. Every message names the source (reference or path) it is about."""


class RegistryError(Exception):
    """A pull, push or mirror failed; the message says which reference and why."""


class LockError(RegistryError):
    """A LockedApp is malformed or needs features this host does not support."""


class DigestMismatchError(RegistryError):
    """A blob's bytes do not hash to the digest that names it."""


class UnsafePathError(LockError):
    """A `files` path from a lock would escape the component's mount."""


class AuthError(RegistryError):
    """The registry refused the credentials (or asked for some and none were found)."""


class InvalidReferenceError(RegistryError):
    """The source string is neither a valid OCI reference nor a valid `oci-layout:` source."""


class NotFoundError(RegistryError):
    """The registry or layout has no such manifest, tag or blob."""


class UnreachableError(RegistryError):
    """The registry could not be reached (connection refused, DNS, timeout): the offline case."""


class RegistryTimeoutError(UnreachableError):
    """The registry connected but did not answer in time (a read timeout or the operation's
    deadline). An UnreachableError, so a tag pulled before is served from the cache as when the
    registry refuses connections."""


class TooLargeError(RegistryError):
    """A manifest or blob is larger than the configured cap, or than its descriptor declares."""
