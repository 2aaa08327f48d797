"""Connecting to a CARLA server: client/server versions, a stale synchronous server, map
names. Every refusal says what to run."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from carla4agt_data.errors import UserError
from carla4agt_data.taxonomy import carla_tag_table, tag_table_name


class NoServer(UserError):
    """No CARLA server answers at the address."""


_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def version_core(version: str) -> str:
    """``"0.9.16-dirty"`` -> ``"0.9.16"`` (unchanged when it has no x.y.z)."""
    match = _VERSION.search(version)
    return ".".join(match.groups()) if match else version


def check_versions(client_version: str, server_version: str, address: str) -> None:
    """Refuse what would fail later with rpc errors (the C++ client only warns)."""
    server = version_core(server_version)
    parts = tuple(int(p) for p in server.split(".")) if _VERSION.fullmatch(server) else ()
    if parts >= (0, 10, 0):
        raise UserError(
            f"The CARLA server at {address} runs {server_version} (Unreal Engine 5), which "
            "this tool does not support yet: it has no light manager, so street lights "
            "cannot follow the presets. Use a CARLA 0.9.14 to 0.9.16 server, for example "
            "docker run --gpus all --net=host carlasim/carla:0.9.16 bash ./CarlaUE4.sh "
            "-RenderOffScreen -nosound -quality-level=Epic.")
    carla_tag_table(server_version)  # refuses versions before 0.9.10
    if version_core(client_version) != server:
        raise UserError(
            f"The CARLA client is {client_version} but the server at {address} runs "
            f"{server_version}; calls would fail with rpc errors. Install the matching "
            f"client: pip install carla=={server}")
    if tag_table_name(server_version) != "0.9.14+":
        warnings.warn(f"CARLA {server_version} tags riders as pedestrians and every vehicle "
                      "alike: rider, bus, motorcycle and bicycle cannot be told apart. Use "
                      "a 0.9.14 or newer server for all 16 classes.", stacklevel=3)


def connect(api: Any, host: str, port: int, timeout: float) -> tuple[Any, str, str]:
    """A client whose versions match the server's: (client, server, client version)."""
    client = api.Client(host, port)
    client.set_timeout(timeout)
    try:
        server_version = client.get_server_version()
    except RuntimeError as exc:
        raise NoServer(f"No CARLA server answers at {host}:{port} ({exc}). Start one "
                        "(CarlaUE4.sh -RenderOffScreen), check --host/--port, or use "
                        "--backend builtin.") from None
    client_version = client.get_client_version()
    check_versions(client_version, server_version, f"{host}:{port}")
    return client, server_version, client_version


def reset_stale_sync(world: Any, sleep: Callable[[float], None], probe: float,
                     address: str) -> bool:
    """A synchronous server that nobody ticks was left by a killed client: set it back
    to asynchronous (True). One that somebody ticks belongs to another client: refuse."""
    settings = world.get_settings()
    if not settings.synchronous_mode:
        return False
    before = world.get_snapshot().frame
    sleep(probe)
    if world.get_snapshot().frame != before:
        raise UserError(
            f"Another client drives the CARLA server at {address} in synchronous mode. Two "
            "clients ticking one server break each other's captures: stop the other client, "
            "or give this run a server of its own (--server HOST:PORT).")
    settings.synchronous_mode = False
    settings.fixed_delta_seconds = None
    world.apply_settings(settings)
    return True


def map_name(name: str) -> str:
    """``"/Game/Carla/Maps/Town01"`` or ``"Carla/Maps/Town01"`` -> ``"Town01"``."""
    return name.rstrip("/").split("/")[-1]


def check_maps(available: Iterable[str], wanted: Iterable[str], address: str) -> None:
    """Every wanted map is on the server, or a UserError that lists the ones there."""
    names = sorted({map_name(m) for m in available})
    unknown = [m for m in wanted if map_name(m) not in names]
    if unknown:
        raise UserError(f"The CARLA server at {address} has no map "
                        + ", ".join(repr(m) for m in unknown) + ". Maps there: "
                        + ", ".join(names) + ". Check --map.")
