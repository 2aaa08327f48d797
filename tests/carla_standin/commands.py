"""``carla.command`` of the stand-in: batch commands the stand-in client executes."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

FutureActor = 0  # carla.command.FutureActor: the id of the actor spawned by the batch


class SpawnActor:
    REAL = "command.SpawnActor"

    def __init__(self, blueprint: Any, transform: Any) -> None:
        self.blueprint, self.transform, self.chain = blueprint, transform, []

    def then(self, command: Any) -> SpawnActor:
        self.chain.append(command)  # runs on the spawned actor (docs python_api SpawnActor.then)
        return self


class SetSimulatePhysics:
    REAL = "command.SetSimulatePhysics"

    def __init__(self, actor: Any, enabled: bool) -> None:
        self.actor, self.enabled = actor, enabled


class ApplyTransform:
    REAL = "command.ApplyTransform"

    def __init__(self, actor: Any, transform: Any) -> None:
        self.actor, self.transform = actor, transform


class DestroyActor:
    REAL = "command.DestroyActor"

    def __init__(self, actor: Any) -> None:
        self.actor = actor


class SetVehicleLightState:
    REAL = "command.SetVehicleLightState"

    def __init__(self, actor: Any, light_state: Any) -> None:
        self.actor, self.light_state = actor, light_state


COMMANDS = SimpleNamespace(FutureActor=FutureActor, SpawnActor=SpawnActor,
                           SetSimulatePhysics=SetSimulatePhysics, ApplyTransform=ApplyTransform,
                           DestroyActor=DestroyActor, SetVehicleLightState=SetVehicleLightState)
