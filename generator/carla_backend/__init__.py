"""The CARLA backend: sampling layouts on a CARLA server and replaying them under presets.

:mod:`.backend` (connection, version, reconnect), :mod:`.sampler`, :mod:`.replay` and
:mod:`.session` (synchronous capture). Tested against an in-repo stand-in of the client API
(``tests/fake_carla.py``).
"""
