"""The CARLA backend: sampling layouts on a CARLA server and replaying them under presets.

:mod:`.backend` (the backend object, reconnect), :mod:`.connection` (versions, a stale
synchronous server, map names), :mod:`.server` (one session per server across layouts),
:mod:`.cameras`, :mod:`.walkers`, :mod:`.sampler`, :mod:`.replay` and :mod:`.session`
(synchronous capture). Tested against a behavioural stand-in of a server
(``tests/carla_standin``) whose API the tests check against the real ``carla`` wheel.
"""
