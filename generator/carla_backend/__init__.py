"""The CARLA backend (in progress): synchronous capture against a real CARLA server.

Only the synchronous capture session is here so far (:mod:`.session`); sampling and replay
arrive with the rest of the backend. Nothing in this package is used by ``generate`` yet.
"""
