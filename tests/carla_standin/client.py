"""The stand-in ``carla.Client`` and the module-like namespace the backend takes as ``api``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import carla

from . import commands as cmd
from .world import World


class Response:
    REAL = "command.Response"

    def __init__(self, actor_id: int = 0, error: str = "") -> None:
        self.actor_id, self.error = actor_id, error

    def has_error(self) -> bool:
        return bool(self.error)


class Client:
    """Connects lazily: without a server at (host, port) the first call times out
    (carla.md "Client wheels")."""

    REAL = "Client"
    _registry: dict[tuple[str, int], Any] = {}

    def __init__(self, host: str = "127.0.0.1", port: int = 2000,
                 worker_threads: int = 0) -> None:
        self._address = (host, port)
        self._timeout = 5.0
        server = self._registry.get(self._address)
        if server is not None:
            server.connections += 1

    def _server(self, what: str) -> Any:
        server = self._registry.get(self._address)
        if server is None:
            raise RuntimeError(f"time-out of {int(self._timeout * 1000)}ms while waiting "
                               f"for the simulator, make sure the simulator is ready and "
                               f"connected to {self._address[0]}:{self._address[1]}")
        server.call(what)
        return server

    def set_timeout(self, seconds: float) -> None:
        self._timeout = float(seconds)
        server = self._registry.get(self._address)
        if server is not None:
            server.timeouts.append(self._timeout)

    def get_client_version(self) -> str:
        server = self._registry.get(self._address)
        return server.client_version if server is not None else "0.9.16"

    def get_server_version(self) -> str:
        return self._server("get_server_version").version

    def get_world(self) -> World:
        server = self._server("get_world")
        return World(server, server.episode, self)

    def get_available_maps(self) -> list[str]:
        return list(self._server("get_available_maps").maps)

    def load_world(self, map_name: str, reset_settings: bool = True,
                   map_layers: Any = carla.MapLayer.All) -> World:
        server = self._server(f"load_world {map_name}")
        server.load_timeouts.append(self._timeout)
        server.load_world(map_name, reset_settings)
        return World(server, server.episode, self)

    def load_world_if_different(self, map_name: str, reset_settings: bool = True,
                                map_layers: Any = carla.MapLayer.All) -> None:
        # Client.load_world_if_different (0.9.15+): no load when that map is loaded
        server = self._server(f"load_world_if_different {map_name}")
        if server.find_map(map_name) != server.map_name:
            server.load_timeouts.append(self._timeout)
            server.load_world(map_name, reset_settings)

    def apply_batch_sync(self, commands: Any, do_tick: bool = False) -> list[Response]:
        server = self._server("apply_batch_sync")  # one blocking call for the whole batch
        out = [self._run(server, c) for c in commands]
        if do_tick:
            # Client.apply_batch_sync: queues a tick cue; in asynchronous mode it runs
            # only once synchronous mode starts (carla.md "What a real server does")
            if server.settings.synchronous_mode:
                server.tick(self)
            else:
                server.pending_cues += 1
        return out

    def _run(self, server: Any, command: Any) -> Response:
        if isinstance(command, cmd.SpawnActor):
            error = server.collision(command.blueprint.id, command.transform)
            if error:
                return Response(error=error)
            actor = server.add_actor(command.blueprint, command.transform)
            for follow in command.chain:
                follow = _bind(follow, actor.id)
                response = self._run(server, follow)
                if response.error:
                    return Response(actor.id, response.error)
            return Response(actor.id)
        actor = server.actors.get(_id(command.actor))
        if actor is None:
            return Response(error=f"Actor {_id(command.actor)} not found")  # Client.cpp
        if isinstance(command, cmd.DestroyActor):
            actor._server_destroy()
        elif isinstance(command, cmd.SetSimulatePhysics):
            actor._physics = bool(command.enabled)
        elif isinstance(command, cmd.ApplyTransform):
            actor._transform = command.transform
        elif isinstance(command, cmd.SetVehicleLightState):
            if not hasattr(actor, "light_state"):
                return Response(actor.id, "not a vehicle")
            actor._light_state = carla.VehicleLightState(int(command.light_state))
        return Response(actor.id)


def _id(actor: Any) -> int:
    return actor if isinstance(actor, int) else actor.id


def _bind(command: Any, actor_id: int) -> Any:
    if getattr(command, "actor", None) == cmd.FutureActor:
        clone = type(command).__new__(type(command))
        clone.__dict__.update(command.__dict__, actor=actor_id)
        return clone
    return command


def make_api(servers: dict[tuple[str, int], Any]) -> Any:
    """A module-like namespace: the wheel's value types, the stand-in Client and commands."""
    bound = type("Client", (Client,), {"_registry": dict(servers)})
    names = ("Transform", "Location", "Rotation", "WorldSettings", "WeatherParameters",
             "VehicleLightState", "LightGroup", "TrafficLightState", "LaneType",
             "AttachmentType", "MapLayer", "WalkerBoneControlIn")
    return SimpleNamespace(Client=bound, command=cmd.COMMANDS,
                           **{n: getattr(carla, n) for n in names})
