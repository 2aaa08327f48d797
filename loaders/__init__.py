"""carla4agt loaders: torch datasets over carla4agt HDF5 files (see the loaders issue)."""
