"""Walker poses. A walker plays its idle animation even with physics off and no
controller, so its silhouette moves between ticks; the pose is frozen
(``get_pose_from_animation`` then ``blend_pose(1.0)``) and its bones (transforms relative
to the parent bone, ``get_bones``) are recorded in the layout, so a replay sets exactly
the pose that sampling captured (``set_bones``)."""

from __future__ import annotations

from typing import Any

BONES_KEY = "walker_bones"  # in Layout.backend_params: {walker name: {bone: [x, y, z, p, y, r]}}


def freeze_pose(walker: Any) -> None:
    """Stop the idle animation where it is."""
    walker.get_pose_from_animation()
    walker.blend_pose(1.0)


def read_bones(walker: Any) -> dict[str, list[float]]:
    """The shown pose, bone by bone, rounded like every pose in a layout file."""
    out = {}
    for bone in walker.get_bones().bone_transforms:
        t = bone.relative
        out[str(bone.name)] = [round(float(v), 4) for v in (
            t.location.x, t.location.y, t.location.z,
            t.rotation.pitch, t.rotation.yaw, t.rotation.roll)]
    return out


def set_pose(walker: Any, bones: dict[str, list[float]] | None, api: Any) -> None:
    """Show the recorded pose; without one (an older layout) freeze the current pose."""
    if not bones:
        freeze_pose(walker)
        return
    walker.set_bones(api.WalkerBoneControlIn([
        (name, api.Transform(api.Location(x=v[0], y=v[1], z=v[2]),
                             api.Rotation(pitch=v[3], yaw=v[4], roll=v[5])))
        for name, v in bones.items()]))
    walker.blend_pose(1.0)
