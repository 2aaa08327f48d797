"""A behavioural stand-in of a CARLA 0.9.16 server and its Python client, for the tests.

It is as strict as a real server where that matters to the backend (each behaviour carries
its source: a CARLA doc page, source file or issue), and it counts what costs time on a
real server: synchronous ticks, blocking calls made in asynchronous mode, map loads. It
never sleeps: time is simulated (:meth:`Server.sleep`).

Only names of the real ``carla`` 0.9.16 wheel are offered, with compatible signatures
(checked by ``tests/test_carla_conformance.py``); value types (``Transform``,
``WorldSettings``, ``WeatherParameters`` ...) are the wheel's own.

Example:
    >>> server = Server()
    >>> api = server.api()                   # use like the carla module
    >>> client = api.Client("localhost", 2000)
"""

from ._wheel import require_wheel

require_wheel()  # a test module using the stand-in skips (or fails in CI) without the wheel

from .client import Client, Response, make_api  # noqa: E402
from .commands import COMMANDS  # noqa: E402
from .server import Costs, Server  # noqa: E402

__all__ = ["COMMANDS", "Client", "Costs", "Response", "Server", "make_api"]
