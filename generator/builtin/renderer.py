"""The built-in renderer: moderngl on a headless EGL context (llvmpipe on a CPU).

A deferred renderer, because four appearances share one geometry. Per layout:
:meth:`BuiltinRenderer.render_tags` runs the label pass (exact CARLA tag ids into an 8-bit
integer target: no blending, no anti-aliasing), which is also the depth pre-pass; the
G-buffer pass then stores everything about each visible surface that the weather does not
change (albedo and procedural texture, normal, material, emission). Per appearance,
:meth:`~BuiltinRenderer.render_rgb` renders the sun's shadow map and runs one lighting pass
over the G-buffer. On llvmpipe this halves the cost of four appearances.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import moderngl
import numpy as np

from carla4agt_data.errors import UserError

from ..layout import CameraSpec
from ..weather import WeatherPreset
from .lighting import Lighting, lighting_for
from .scene import Light, Scene

MAX_LIGHTS = 8  # every pixel pays for every light on llvmpipe: keep the nearest
SHADOW_SIZE = 2048
NEAR, FAR = 0.3, 800.0


def _shader(name: str) -> str:
    """GLSL source with its ``//#include file.glsl`` lines replaced by those files."""
    text = resources.files(__package__).joinpath("shaders", name).read_text()
    lines = [_shader(line.split()[1]) if line.startswith("//#include ") else line
             for line in text.splitlines()]
    return "\n".join(lines) + "\n"


def create_context():
    """A headless OpenGL 3.3+ context, or a UserError that says what to install."""
    try:
        return moderngl.create_standalone_context(require=330, backend="egl")  # type: ignore[arg-type]
    except Exception as exc:  # moderngl raises plain Exception subclasses here
        raise UserError(
            f"Cannot create a headless OpenGL context for the built-in renderer ({exc}). "
            "Install Mesa's EGL: 'apt-get install libegl1 libgl1-mesa-dri' on Debian/Ubuntu "
            "(or 'dnf install mesa-libEGL mesa-dri-drivers'), or use a GPU driver with EGL."
        ) from None


def view_matrix(camera: CameraSpec) -> np.ndarray:
    """World -> camera for CARLA's left-handed frame (x forward, y right, z up)."""
    t = camera.transform
    p, y = np.radians(t.pitch), np.radians(t.yaw)
    fwd = np.array([np.cos(p) * np.cos(y), np.cos(p) * np.sin(y), np.sin(p)])
    # CARLA's y axis points right; mirror it so a right-handed GL camera sees it right.
    mirror = np.diag([1.0, -1.0, 1.0])
    eye = mirror @ np.array([t.x, t.y, t.z])
    f = mirror @ fwd
    r = np.cross(f, [0.0, 0.0, 1.0])
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = r, u, -f
    m[:3, 3] = -m[:3, :3] @ eye
    return m @ np.diag([1.0, -1.0, 1.0, 1.0])


def projection_matrix(camera: CameraSpec) -> np.ndarray:
    f = 1.0 / np.tan(np.radians(camera.fov) / 2)
    aspect = camera.width / camera.height
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = f, f * aspect
    m[2, 2] = (FAR + NEAR) / (NEAR - FAR)
    m[2, 3] = 2 * FAR * NEAR / (NEAR - FAR)
    m[3, 2] = -1.0
    return m


def _light_view_proj(camera: CameraSpec, sun_dir: np.ndarray) -> np.ndarray:
    """Orthographic sun view covering the street in front of the camera."""
    t = camera.transform
    y = np.radians(t.yaw)
    focus = np.array([t.x + 45 * np.cos(y), t.y + 45 * np.sin(y), 0.0])
    eye = focus + sun_dir * 250.0
    f = -sun_dir
    up = np.array([0.0, 0.0, 1.0]) if abs(f[2]) < 0.99 else np.array([1.0, 0.0, 0.0])
    r = np.cross(f, up)
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    view = np.eye(4)
    view[0, :3], view[1, :3], view[2, :3] = r, u, -f
    view[:3, 3] = -view[:3, :3] @ eye
    half, near, far = 75.0, 1.0, 600.0
    ortho = np.diag([1 / half, 1 / half, -2 / (far - near), 1.0])
    ortho[2, 3] = -(far + near) / (far - near)
    return ortho @ view


def _gl(m: np.ndarray) -> bytes:
    return np.ascontiguousarray(m.T, dtype=np.float32).tobytes()  # GL is column-major


class BuiltinRenderer:
    """Renders built-in scenes at one image size.

    Args:
        width, height: image size in pixels.
        antialias: supersampling factor for the RGB images (1 = off, 2 = 2x2 samples per
            pixel); labels are never anti-aliased.

    Example:
        >>> with BuiltinRenderer(1024, 512) as r:
        ...     r.load(build_scene(layout), layout.camera)
        ...     tags = r.render_tags()            # once per layout, for every appearance
        ...     rgb = r.render_rgb(preset)
    """

    def __init__(self, width: int, height: int, antialias: int = 1) -> None:
        if antialias not in (1, 2, 3, 4):
            raise UserError(f"Invalid anti-aliasing factor {antialias}: use 1 (off) to 4.")
        self.size = (width, height)
        self.antialias = antialias
        self.ctx = create_context()
        ctx = self.ctx

        def program(vertex: str, fragment: str):
            return ctx.program(vertex_shader=_shader(vertex), fragment_shader=_shader(fragment))

        self.label_prog = program("scene.vert", "label.frag")
        self.gbuffer_prog = program("scene.vert", "gbuffer.frag")
        self.depth_prog = program("depth.vert", "depth.frag")
        self.label_sky_prog = program("fullscreen.vert", "label_sky.frag")
        self.light_prog = program("fullscreen.vert", "light.frag")
        self.label_sky_vao = ctx.vertex_array(self.label_sky_prog, [])
        self.light_vao = ctx.vertex_array(self.light_prog, [])

        label_depth = ctx.depth_renderbuffer((width, height))
        self.label_fbo = ctx.framebuffer(
            color_attachments=[ctx.renderbuffer((width, height), 1, dtype="u1")],
            depth_attachment=label_depth)
        big = (width * antialias, height * antialias)
        # albedo+spec, normal+shininess, emission+switch code, position (32-bit: shadows)
        self.gbuffer = [ctx.texture(big, 4, dtype=dtype) for dtype in ("f1", "f2", "f2", "f4")]
        # At 1x the G-buffer shares the label pass's depth: each pixel is shaded once.
        self.gbuffer_fbo = ctx.framebuffer(
            color_attachments=self.gbuffer,
            depth_attachment=label_depth if antialias == 1 else ctx.depth_renderbuffer(big))
        self.out_fbo = ctx.framebuffer(color_attachments=[ctx.renderbuffer(big, 4)])
        self.shadow_tex = ctx.depth_texture((SHADOW_SIZE, SHADOW_SIZE))
        self.shadow_tex.compare_func = "<="
        self.shadow_tex.filter = (moderngl.LINEAR, moderngl.LINEAR)  # hardware 2x2 PCF
        self.shadow_tex.repeat_x = self.shadow_tex.repeat_y = False
        self.shadow_fbo = ctx.framebuffer(depth_attachment=self.shadow_tex)
        self._vbo = None
        self._vaos: dict[str, Any] = {}
        self._camera: CameraSpec | None = None
        self._lights: tuple[Light, ...] = ()
        self._labels_current = self._gbuffer_current = False
        self._shadow_key = b""

    def __enter__(self) -> BuiltinRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.ctx is not None:
            self.ctx.release()
            self.ctx = None

    def load(self, scene: Scene, camera: CameraSpec) -> None:
        """Upload a scene's vertices; later renders use it from ``camera``."""
        with self.ctx:  # several renderers may live in one process: make ours current
            self._load(scene, camera)

    def _load(self, scene: Scene, camera: CameraSpec) -> None:
        if (camera.width, camera.height) != self.size:
            raise ValueError(f"Camera size {camera.width}x{camera.height} differs from the "
                             f"renderer's {self.size[0]}x{self.size[1]}.")
        if self._vbo is not None:
            for vao in self._vaos.values():
                vao.release()
            self._vbo.release()
        self._vbo = self.ctx.buffer(np.ascontiguousarray(scene.vertices, np.float32).tobytes())
        full = (self._vbo, "3f 3f 3f 3f", "in_pos", "in_normal", "in_color", "in_params")
        self._vaos = {
            "label": self.ctx.vertex_array(self.label_prog, [full], skip_errors=True),
            "gbuffer": self.ctx.vertex_array(self.gbuffer_prog, [full], skip_errors=True),
            "depth": self.ctx.vertex_array(self.depth_prog, [(self._vbo, "3f 36x", "in_pos")]),
        }
        self._camera = camera
        self._lights = scene.lights
        self._first_caster = scene.first_caster
        self._num_vertices = len(scene.vertices)
        self._view_proj = projection_matrix(camera) @ view_matrix(camera)
        t = camera.transform
        self._cam_pos = (t.x, t.y, t.z)
        self._cloud_seed = (abs(hash((round(t.x, 3), round(t.y, 3)))) % 997) / 997.0
        self._labels_current = self._gbuffer_current = False
        self._shadow_key = b""

    def render_tags(self) -> np.ndarray:
        """CARLA 0.9.14+ tag ids of the loaded scene, ``uint8 [H, W]``; sky where empty.

        The label pass does not depend on the weather: one pass serves every appearance.
        """
        with self.ctx:
            return self._label_pass()

    def _label_pass(self) -> np.ndarray:
        ctx = self.ctx
        self.label_fbo.use()
        self.label_fbo.depth_mask = True
        ctx.enable(ctx.DEPTH_TEST)
        ctx.depth_func = "<"
        self.label_fbo.clear(depth=1.0)
        self.label_prog["u_view_proj"].write(_gl(self._view_proj))
        self._vaos["label"].render()
        ctx.depth_func = "<="  # the sky triangle sits at the far plane
        self.label_sky_vao.render(vertices=3)
        self._labels_current = True
        w, h = self.size
        data = self.label_fbo.read(components=1, dtype="u1", alignment=1)
        return np.frombuffer(data, np.uint8).reshape(h, w)[::-1].copy()

    def prepare_surfaces(self) -> None:
        """Run the G-buffer pass now (else the first :meth:`render_rgb` runs it)."""
        with self.ctx:
            self._gbuffer_pass()
            self.ctx.finish()  # GL is asynchronous: finish here so timings split honestly

    def _gbuffer_pass(self) -> None:
        ctx = self.ctx
        if self.antialias == 1 and not self._labels_current:
            self._label_pass()  # its depth is this pass's depth
        self.gbuffer_fbo.use()
        ctx.enable(ctx.DEPTH_TEST)
        if self.antialias == 1:
            self.gbuffer_fbo.depth_mask = False  # before clear(), which clears depth too
            self.gbuffer_fbo.clear(0.0, 0.0, 0.0, 0.0)
            ctx.depth_func = "=="  # the scene.vert positions are invariant across programs
        else:
            self.gbuffer_fbo.depth_mask = True
            self.gbuffer_fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            ctx.depth_func = "<"
        self.gbuffer_prog["u_view_proj"].write(_gl(self._view_proj))
        self._vaos["gbuffer"].render()
        self.gbuffer_fbo.depth_mask = True
        self._gbuffer_current = True

    def _active_lights(self, lighting: Lighting) -> list[Light]:
        """The lamps and headlights that are on, nearest first, at most MAX_LIGHTS."""
        on = {"street": lighting.street_lights, "head": lighting.head_lights}
        assert self._camera is not None, "load() a scene first"
        cam = np.array(self._cam_pos)
        yaw = np.radians(self._camera.transform.yaw)
        fwd = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        candidates = []
        for light in self._lights:
            rel = np.array(light.position) - cam
            dist = float(np.linalg.norm(rel))
            if on[light.group] and float(rel @ fwd) > -light.radius and dist < 120:
                candidates.append((dist, light))
        candidates.sort(key=lambda c: c[0])
        return [light for _, light in candidates[:MAX_LIGHTS]]

    def _set(self, name: str, value) -> None:
        prog = self.light_prog
        if name in prog:  # the GLSL compiler drops unused uniforms
            if isinstance(value, bytes):
                prog[name].write(value)
            else:
                prog[name].value = value

    def render_rgb(self, preset: WeatherPreset) -> np.ndarray:
        """The lit image of the loaded scene under ``preset``: ``uint8 [H, W, 3]``."""
        with self.ctx:
            return self._lit_pass(preset)

    def _lit_pass(self, preset: WeatherPreset) -> np.ndarray:
        if not self._gbuffer_current:
            self._gbuffer_pass()
        ctx = self.ctx
        lighting = lighting_for(preset)
        assert self._camera is not None, "load() a scene first"
        light_vp = _light_view_proj(self._camera, np.array(lighting.sun_dir))
        shadow_key = light_vp.tobytes()
        if lighting.shadows and shadow_key != self._shadow_key:  # noon and fog share a sun
            self._shadow_key = shadow_key
            self.shadow_fbo.use()
            self.shadow_fbo.clear(depth=1.0)
            ctx.enable(ctx.DEPTH_TEST)
            ctx.depth_func = "<"
            self.depth_prog["u_light_vp"].write(_gl(light_vp))
            self._vaos["depth"].render(first=self._first_caster,
                                       vertices=self._num_vertices - self._first_caster)

        self.out_fbo.use()
        ctx.disable(ctx.DEPTH_TEST)
        for name, value in lighting.uniforms().items():
            self._set(name, value)
        self._set("u_time_seed", self._cloud_seed)
        self._set("u_cam_pos", self._cam_pos)
        self._set("u_light_vp", _gl(light_vp))
        self._set("u_inv_view_proj", _gl(np.linalg.inv(self._view_proj)))
        lights = self._active_lights(lighting)
        pos = np.zeros((MAX_LIGHTS, 4), np.float32)
        col = np.zeros((MAX_LIGHTS, 4), np.float32)
        dirs = np.zeros((MAX_LIGHTS, 3), np.float32)
        for i, light in enumerate(lights):
            pos[i] = (*light.position, light.radius)
            col[i] = (*light.color, light.cos_cutoff)
            dirs[i] = np.array(light.direction) / np.linalg.norm(light.direction)
        self._set("u_num_lights", len(lights))
        self._set("u_light_pos", pos.tobytes())
        self._set("u_light_color", col.tobytes())
        self._set("u_light_dir", dirs.tobytes())
        for unit, name in enumerate(("g_albedo", "g_normal", "g_emit", "g_pos")):
            self.gbuffer[unit].use(location=unit)
            self._set(name, unit)
        self.shadow_tex.use(location=4)
        self._set("u_shadow_map", 4)
        self.light_vao.render(vertices=3)

        w, h = self.size
        s = self.antialias
        data = self.out_fbo.read(components=3, alignment=1)
        image = np.frombuffer(data, np.uint8).reshape(h * s, w * s, 3)[::-1]
        if s > 1:  # box-filter the supersamples
            image = image.reshape(h, s, w, s, 3).mean(axis=(1, 3)).round().astype(np.uint8)
        return np.ascontiguousarray(image)
