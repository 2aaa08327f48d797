"""carla4agt data: class taxonomy, tag remapping, file formats and the `carla4agt` CLI."""

__version__ = "0.1.0"
