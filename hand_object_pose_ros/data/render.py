"""
Rasterise coloured triangle meshes seen by a pinhole camera: colour, depth and a label image.

Two back ends give the same images (up to edge pixels):

- :class:`GLRenderer`: moderngl with a headless EGL context (Mesa llvmpipe on a CPU-only
  machine, the GPU driver elsewhere);
- :class:`CPURenderer`: a z-buffer rasteriser, compiled with numba when it is installed, else
  numpy per triangle (slow, last resort).

:func:`create_renderer` tries GL and falls back to the CPU with one log line saying which.
Contexts are created lazily inside the process that renders (never shared across ``fork``).

Conventions: vertices in the camera optical frame (x right, y down, z forward), metres; K is
OpenCV's (pixel centres at integers). Colours are per-vertex (lighting is baked into them by
the caller) and interpolated perspective-correctly. The depth image holds the camera-frame z in
metres (0 where nothing was drawn); the label image the mesh label (0 = nothing drawn).
"""

from dataclasses import dataclass
import logging
import os

import numpy as np

LOGGER = logging.getLogger(__name__)

# Clip planes (metres); hands and objects lie well inside.
NEAR_M = 0.02
FAR_M = 20.0


@dataclass
class Mesh:
    """
    A triangle mesh to draw.

    :param vertices: (N, 3) float32, metres, camera frame.
    :param faces: (F, 3) int vertex indices.
    :param colors: (N, 3) float32 linear RGB in 0..1 (lighting included).
    :param label: value written to the label image (1..255).
    """

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    label: int


@dataclass
class RenderOutput:
    """
    One rendered view.

    :param color: (H, W, 3) uint8 RGB, black where nothing was drawn.
    :param depth_m: (H, W) float32, camera-frame z in metres, 0 where nothing was drawn.
    :param label: (H, W) uint8 mesh labels, 0 where nothing was drawn.
    """

    color: np.ndarray
    depth_m: np.ndarray
    label: np.ndarray


def _pack(meshes):
    """Concatenate meshes: (positions (N,3), colours (N,3), labels (N,), faces (F,3) int32)."""
    positions, colors, labels, faces = [], [], [], []
    offset = 0
    for mesh in meshes:
        count = len(mesh.vertices)
        positions.append(np.asarray(mesh.vertices, np.float32))
        colors.append(np.asarray(mesh.colors, np.float32))
        labels.append(np.full(count, mesh.label, np.float32))
        faces.append(np.asarray(mesh.faces, np.int32) + offset)
        offset += count
    return (np.concatenate(positions), np.concatenate(colors), np.concatenate(labels),
            np.concatenate(faces))


_VERTEX_SHADER = """
#version 330
uniform vec4 intrinsics;   // fx, fy, cx, cy (pixels)
uniform vec2 image_size;   // width, height (pixels)
uniform vec2 clip_planes;  // near, far (metres)
in vec3 in_position;
in vec3 in_color;
in float in_label;
out vec3 v_color;
out float v_depth;
flat out float v_label;
void main() {
    float z = in_position.z;
    // OpenCV pixel u (centre at integer u) sits at window x = u + 0.5. Image row v is written
    // to framebuffer row v, so the read-back needs no flip.
    float u = intrinsics.x * in_position.x / z + intrinsics.z;
    float v = intrinsics.y * in_position.y / z + intrinsics.w;
    float ndc_x = (2.0 * u + 1.0) / image_size.x - 1.0;
    float ndc_y = (2.0 * v + 1.0) / image_size.y - 1.0;
    float n = clip_planes.x;
    float f = clip_planes.y;
    float clip_z = ((f + n) * z - 2.0 * f * n) / (f - n);
    gl_Position = vec4(ndc_x * z, ndc_y * z, clip_z, z);
    v_color = in_color;
    v_depth = z;
    v_label = in_label;
}
"""

_FRAGMENT_SHADER = """
#version 330
in vec3 v_color;
in float v_depth;
flat in float v_label;
layout(location = 0) out vec4 out_color;
layout(location = 1) out vec2 out_depth_label;
void main() {
    out_color = vec4(v_color, 1.0);
    out_depth_label = vec2(v_depth, v_label);
}
"""


class GLRenderer:
    """moderngl renderer on a headless EGL context (created lazily, once per process)."""

    backend_name = 'moderngl-egl'

    def __init__(self):
        """Create the renderer; the GL context is made on first use in the calling process."""
        self._pid = None
        self._ctx = None
        self._program = None
        self._framebuffers = {}

    def _ensure_context(self):
        """Create the context in this process (again after a fork)."""
        if self._ctx is not None and self._pid == os.getpid():
            return
        import moderngl

        self._framebuffers = {}
        self._ctx = moderngl.create_standalone_context(backend='egl')
        self._pid = os.getpid()
        self._program = self._ctx.program(vertex_shader=_VERTEX_SHADER,
                                          fragment_shader=_FRAGMENT_SHADER)

    def _framebuffer(self, width, height):
        key = (width, height)
        if key not in self._framebuffers:
            ctx = self._ctx
            color = ctx.renderbuffer((width, height), 4, dtype='f1')
            depth_label = ctx.renderbuffer((width, height), 2, dtype='f4')
            depth = ctx.depth_renderbuffer((width, height))
            self._framebuffers[key] = ctx.framebuffer([color, depth_label], depth)
        return self._framebuffers[key]

    def check(self):
        """Create the context now; raises when no GL context can be made."""
        self._ensure_context()
        return self

    def render(self, meshes, K, width, height):
        """
        Draw meshes.

        :param meshes: list of :class:`Mesh`, camera frame.
        :param K: (3, 3) intrinsics, pixels.
        :param width: image width, pixels.
        :param height: image height, pixels.
        :return: :class:`RenderOutput`.
        """
        import moderngl

        self._ensure_context()
        ctx = self._ctx
        positions, colors, labels, faces = _pack(meshes)
        interleaved = np.concatenate([positions, colors, labels[:, None]], axis=1)
        vbo = ctx.buffer(np.ascontiguousarray(interleaved, np.float32).tobytes())
        ibo = ctx.buffer(np.ascontiguousarray(faces, np.int32).tobytes())
        vao = ctx.vertex_array(self._program, [(vbo, '3f 3f 1f', 'in_position', 'in_color',
                                                'in_label')], index_buffer=ibo,
                               index_element_size=4)
        program = self._program
        program['intrinsics'].value = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]),
                                       float(K[1, 2]))
        program['image_size'].value = (float(width), float(height))
        program['clip_planes'].value = (NEAR_M, FAR_M)
        framebuffer = self._framebuffer(width, height)
        framebuffer.use()
        framebuffer.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.CULL_FACE)
        vao.render(moderngl.TRIANGLES)
        # Read back only the pixels the meshes can cover (read-back dominates the cost).
        x0, y0, x1, y1 = _screen_bounds(positions, K, width, height)
        color = np.zeros((height, width, 3), np.uint8)
        depth = np.zeros((height, width), np.float32)
        label = np.zeros((height, width), np.uint8)
        if x1 > x0 and y1 > y0:
            viewport = (x0, y0, x1 - x0, y1 - y0)
            color[y0:y1, x0:x1] = np.frombuffer(framebuffer.read(
                viewport=viewport, components=3, attachment=0, dtype='f1'),
                np.uint8).reshape(y1 - y0, x1 - x0, 3)
            depth_label = np.frombuffer(framebuffer.read(
                viewport=viewport, components=2, attachment=1, dtype='f4'),
                np.float32).reshape(y1 - y0, x1 - x0, 2)
            depth[y0:y1, x0:x1] = depth_label[..., 0]
            label[y0:y1, x0:x1] = np.rint(depth_label[..., 1]).astype(np.uint8)
        vao.release()
        vbo.release()
        ibo.release()
        return RenderOutput(color, depth, label)


def _screen_bounds(positions, K, width, height):
    """
    Pixel rectangle that contains every projected vertex in front of the camera.

    :return: (x0, y0, x1, y1) ints, end-exclusive, clamped to the image (whole image when a
        vertex lies behind the near plane).
    """
    z = positions[:, 2]
    if np.any(z <= NEAR_M):
        return 0, 0, width, height
    u = K[0, 0] * positions[:, 0] / z + K[0, 2]
    v = K[1, 1] * positions[:, 1] / z + K[1, 2]
    x0 = int(np.clip(np.floor(u.min()) - 1, 0, width))
    x1 = int(np.clip(np.ceil(u.max()) + 2, 0, width))
    y0 = int(np.clip(np.floor(v.min()) - 1, 0, height))
    y1 = int(np.clip(np.ceil(v.max()) + 2, 0, height))
    return x0, y0, x1, y1


def _rasterize_python(screen, inv_z, colors, labels, faces, width, height, zbuf, color_out,
                      label_out):
    """
    Z-buffer rasterisation of projected triangles (loop form, compiled by numba).

    :param screen: (N, 2) float64 pixel coordinates of the vertices.
    :param inv_z: (N,) float64 1 / z.
    :param colors: (N, 3) float64 colours.
    :param labels: (N,) float64 labels.
    :param faces: (F, 3) int32.
    :param zbuf: (H, W) float64 1/z buffer (0 = empty), updated in place.
    :param color_out: (H, W, 3) float64, updated in place.
    :param label_out: (H, W) float64, updated in place.
    """
    for f in range(faces.shape[0]):
        a = faces[f, 0]
        b = faces[f, 1]
        c = faces[f, 2]
        if inv_z[a] <= 0.0 or inv_z[b] <= 0.0 or inv_z[c] <= 0.0:
            continue
        ax = screen[a, 0]
        ay = screen[a, 1]
        bx = screen[b, 0]
        by = screen[b, 1]
        cx = screen[c, 0]
        cy = screen[c, 1]
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if area == 0.0:
            continue
        x0 = max(int(np.ceil(min(ax, bx, cx))), 0)
        x1 = min(int(np.floor(max(ax, bx, cx))), width - 1)
        y0 = max(int(np.ceil(min(ay, by, cy))), 0)
        y1 = min(int(np.floor(max(ay, by, cy))), height - 1)
        for y in range(y0, y1 + 1):
            for x in range(x0, x1 + 1):
                w0 = ((bx - x) * (cy - y) - (by - y) * (cx - x)) / area
                w1 = ((cx - x) * (ay - y) - (cy - y) * (ax - x)) / area
                w2 = 1.0 - w0 - w1
                if w0 < 0.0 or w1 < 0.0 or w2 < 0.0:
                    continue
                iz = w0 * inv_z[a] + w1 * inv_z[b] + w2 * inv_z[c]
                if iz <= zbuf[y, x]:
                    continue
                zbuf[y, x] = iz
                # Perspective-correct weights.
                p0 = w0 * inv_z[a] / iz
                p1 = w1 * inv_z[b] / iz
                p2 = w2 * inv_z[c] / iz
                for k in range(3):
                    color_out[y, x, k] = (p0 * colors[a, k] + p1 * colors[b, k]
                                          + p2 * colors[c, k])
                label_out[y, x] = labels[a]


def _rasterize_numpy(screen, inv_z, colors, labels, faces, width, height, zbuf, color_out,
                     label_out):
    """Slow fallback of :func:`_rasterize_python` without numba: numpy over each bounding box."""
    for a, b, c in faces:
        if min(inv_z[a], inv_z[b], inv_z[c]) <= 0.0:
            continue
        (ax, ay), (bx, by), (cx, cy) = screen[a], screen[b], screen[c]
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if area == 0.0:
            continue
        x0 = max(int(np.ceil(min(ax, bx, cx))), 0)
        x1 = min(int(np.floor(max(ax, bx, cx))), width - 1)
        y0 = max(int(np.ceil(min(ay, by, cy))), 0)
        y1 = min(int(np.floor(max(ay, by, cy))), height - 1)
        if x1 < x0 or y1 < y0:
            continue
        ys, xs = np.mgrid[y0:y1 + 1, x0:x1 + 1].astype(np.float64)
        w0 = ((bx - xs) * (cy - ys) - (by - ys) * (cx - xs)) / area
        w1 = ((cx - xs) * (ay - ys) - (cy - ys) * (ax - xs)) / area
        w2 = 1.0 - w0 - w1
        iz = w0 * inv_z[a] + w1 * inv_z[b] + w2 * inv_z[c]
        window = zbuf[y0:y1 + 1, x0:x1 + 1]
        take = (w0 >= 0) & (w1 >= 0) & (w2 >= 0) & (iz > window)
        if not take.any():
            continue
        window[take] = iz[take]
        p = np.stack([w0 * inv_z[a], w1 * inv_z[b], w2 * inv_z[c]], -1)[take] / iz[take, None]
        color_out[y0:y1 + 1, x0:x1 + 1][take] = p @ colors[[a, b, c]]
        label_out[y0:y1 + 1, x0:x1 + 1][take] = labels[a]


def _compile_rasterizer():
    """Return (kernel, name): numba-compiled when numba is importable, else numpy."""
    try:
        import numba
    except ImportError:
        return _rasterize_numpy, 'cpu-numpy'
    return numba.njit(cache=False, nogil=True)(_rasterize_python), 'cpu-numba'


class CPURenderer:
    """Z-buffer rasteriser on the CPU (numba when installed, else numpy)."""

    def __init__(self):
        """Create the renderer; the kernel compiles on first use."""
        self._kernel = None
        self.backend_name = 'cpu'

    def check(self):
        """Compile the kernel now."""
        if self._kernel is None:
            self._kernel, self.backend_name = _compile_rasterizer()
        return self

    def render(self, meshes, K, width, height):
        """
        Draw meshes; same contract as :meth:`GLRenderer.render`.

        :param meshes: list of :class:`Mesh`, camera frame.
        :param K: (3, 3) intrinsics, pixels.
        :param width: image width, pixels.
        :param height: image height, pixels.
        :return: :class:`RenderOutput`.
        """
        self.check()
        positions, colors, labels, faces = _pack(meshes)
        positions = positions.astype(np.float64)
        z = positions[:, 2]
        # Triangles with a vertex behind the near plane are skipped (no clipping needed here).
        inv_z = np.where(z > NEAR_M, 1.0 / np.maximum(z, NEAR_M), -1.0)
        K = np.asarray(K, np.float64)
        screen = np.stack([K[0, 0] * positions[:, 0] * inv_z + K[0, 2],
                           K[1, 1] * positions[:, 1] * inv_z + K[1, 2]], axis=1)
        zbuf = np.zeros((height, width))
        color_out = np.zeros((height, width, 3))
        label_out = np.zeros((height, width))
        self._kernel(np.ascontiguousarray(screen), inv_z, colors.astype(np.float64),
                     labels.astype(np.float64), np.ascontiguousarray(faces, np.int32),
                     int(width), int(height), zbuf, color_out, label_out)
        depth = np.where(zbuf > 0, 1.0 / np.where(zbuf > 0, zbuf, 1.0), 0.0).astype(np.float32)
        color = np.clip(np.rint(color_out * 255.0), 0, 255).astype(np.uint8)
        return RenderOutput(color, depth, np.rint(label_out).astype(np.uint8))


_PROCESS_RENDERERS = {}


def create_renderer(backend='auto'):
    """
    Return this process's renderer (one per process and back end, created on first call).

    :param backend: 'auto' (GL, else CPU), 'gl' or 'cpu'.
    :return: :class:`GLRenderer` or :class:`CPURenderer`, ready to render.
    :raises RuntimeError: backend 'gl' when no GL context can be made.
    """
    key = (os.getpid(), backend)
    if key in _PROCESS_RENDERERS:
        return _PROCESS_RENDERERS[key]
    renderer = None
    if backend in ('auto', 'gl'):
        try:
            renderer = GLRenderer().check()
            LOGGER.info('synthetic renderer: moderngl EGL context (%s)',
                        renderer._ctx.info.get('GL_RENDERER', '?'))
        except Exception as error:  # noqa: B902 - any GL/EGL failure means: use the CPU.
            if backend == 'gl':
                raise RuntimeError('no moderngl EGL context: %s' % error) from error
            renderer = None
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            LOGGER.warning('synthetic renderer: no GL context (%s); using the CPU rasteriser',
                           reason)
    if renderer is None:
        if backend not in ('auto', 'cpu'):
            raise ValueError("renderer backend must be 'auto', 'gl' or 'cpu', got %r" % backend)
        renderer = CPURenderer().check()
        if backend == 'cpu':
            LOGGER.info('synthetic renderer: CPU rasteriser (%s)', renderer.backend_name)
    _PROCESS_RENDERERS[key] = renderer
    return renderer
