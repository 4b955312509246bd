"""Shared pytest fixtures. Each area adds its own in tests/support/ and imports them here."""
from tests.support.browser import *  # noqa: F403
from tests.support.db_servers import *  # noqa: F403
from tests.support.registry_server import *  # noqa: F403
from tests.support.server import *  # noqa: F403
from tests.support.upstream import *  # noqa: F403
