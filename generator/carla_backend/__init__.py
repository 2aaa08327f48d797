"""The CARLA backend (in progress): capture against a real CARLA server.

Written so far: the synchronous capture session (:mod:`.session`) and the replay of a
layout under the presets (:mod:`.replay`), tested against an in-repo stand-in of the
client API. Not yet: sampling layouts on a server, setting the recorded traffic-light
states, connection handling (version checks, reconnect with back-off), several servers,
and wiring into ``carla4agt generate --backend carla``.
"""
