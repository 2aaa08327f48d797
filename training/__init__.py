"""carla4agt training: alignment losses, ClassMix and the reference loop (see its issue)."""
