"""The ``carla4agt`` command line: thin click commands over the library packages."""
