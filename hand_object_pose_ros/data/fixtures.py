"""
Small DexYCB and ObMan trees in the real on-disk formats, with their ground truth.

Used by the tests, and by users to check an install::

    python -m hand_object_pose_ros.data.fixtures dexycb /tmp/dexycb_fixture
    python -m hand_object_pose_ros.data.fixtures obman /tmp/obman_fixture

The content is synthetic: the package's stand-in MANO hand (not MANO) posed at random, box
objects, flat-shaded blobs as images. Every file has the published name, keys, dtypes and
conventions (DexYCB: JPEG colour, 16-bit depth in mm, ``labels_%06d.npz``, ``pose_m`` as PCA
coefficients relative to the mean hand, translation that is not the wrist; ObMan: pickled meta
dicts in the OpenGL camera frame, swapped depth min/max names, BGR-ordered 3-channel PNGs,
``pca_pose`` without the mean, non-contiguous ids, ShapeNet meshes beside the release).
"""

import argparse
import os
import pickle
import sys

import cv2
import numpy as np
from scipy.spatial.transform import Rotation
import torch
import yaml

from hand_object_pose_ros.data import common
from hand_object_pose_ros.data import dexycb
from hand_object_pose_ros.data import obman

# Box mesh faces (outward), vertex i has coordinates (bit0, bit1, bit2) of i.
_BOX_FACES = np.array([[0, 2, 3], [0, 3, 1], [4, 5, 7], [4, 7, 6], [0, 1, 5], [0, 5, 4],
                       [2, 6, 7], [2, 7, 3], [0, 4, 6], [0, 6, 2], [1, 3, 7], [1, 7, 5]])
# Intrinsics written for every DexYCB camera (fx, fy, ppx, ppy), close to the README example.
_DEXYCB_INTRINSICS = (613.08, 612.0, 313.03, 245.01)
_EXTRINSICS_NAME = '20200702-151821'


def box_mesh(half_extents, centre=(0.0, 0.0, 0.0)):
    """
    Build a closed, outward-oriented box.

    :param half_extents: (3,) metres.
    :param centre: (3,) metres.
    :return: tuple (vertices (8, 3) float64, faces (12, 3) int64).
    """
    index = np.arange(8)
    bits = np.stack([index & 1, (index >> 1) & 1, (index >> 2) & 1], axis=1) * 2.0 - 1.0
    return bits * np.asarray(half_extents) + np.asarray(centre), _BOX_FACES.copy()


def write_obj(path, vertices, faces):
    """Write a Wavefront OBJ with texture coordinates and ``v/vt`` faces (as YCB's)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as stream:
        stream.write('mtllib %s.mtl\n' % os.path.basename(path))
        for vertex in vertices:
            stream.write('v %.6f %.6f %.6f\n' % tuple(vertex))
        for index in range(len(vertices)):
            stream.write('vt %.3f %.3f\n' % (index % 2, index // 2 % 2))
        for face in faces:
            stream.write('f %s\n' % ' '.join('%d/%d' % (v + 1, v + 1) for v in face))


def _project(points, K):
    return common.project(points, K)


def render_blobs(rng, height, width, K, hand_vertices, objects):
    """
    Paint a hand and box objects over a smooth random background.

    :param hand_vertices: (778, 3) camera frame or None.
    :param objects: list of (label, vertices (8, 3) camera frame) boxes.
    :return: tuple (rgb (H, W, 3) uint8, labels (H, W) int32 (0 background, -1 hand, or the
        object label), depth (H, W) float64 metres, 0 where nothing).
    """
    small = rng.integers(40, 200, (6, 8, 3)).astype(np.uint8)
    rgb = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    labels = np.zeros((height, width), np.int32)
    depth = np.zeros((height, width))
    layers = [(label, vertices) for label, vertices in objects]
    if hand_vertices is not None:
        layers.append((-1, hand_vertices))
    # Far to near, so nearer things paint over.
    layers.sort(key=lambda item: -float(item[1][:, 2].mean()))
    for label, vertices in layers:
        mask = np.zeros((height, width), np.uint8)
        pixels = np.round(_project(vertices, K)).astype(np.int32)
        if label == -1:
            for u, v in pixels:
                cv2.circle(mask, (int(u), int(v)), 4, 1, -1)
            color = (215, 160, 130)
        else:
            cv2.fillConvexPoly(mask, cv2.convexHull(pixels), 1)
            color = tuple(int(c) for c in rng.integers(30, 250, 3))
        mask = mask.astype(bool)
        rgb[mask] = color
        labels[mask] = label
        depth[mask] = float(vertices[:, 2].mean())
    return rgb, labels, depth


def _standin_layer(side):
    from hand_object_pose_ros.mano import ManoLayer
    return ManoLayer.standin(side=side, flat_hand_mean=True)


# ----------------------------------------------------------------------------------------------
# DexYCB.

def _dexycb_frame(rng, K, layer, betas, object_sizes, ycb_ids, grasp_index):
    """Random hand and object poses of one DexYCB frame (camera frame)."""
    pca = rng.normal(0.0, 0.6, 45)
    with torch.no_grad():
        fingers = layer.pca_to_axis_angle(torch.as_tensor(pca[None], dtype=torch.float32),
                                          add_mean=True)[0].double().numpy()
    global_orient = Rotation.random(random_state=rng.integers(1 << 31)).as_rotvec()
    mano_pose = np.concatenate([global_orient, fingers])
    vertices, joints = common.mano_forward(layer, mano_pose, betas)
    wrist = np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.04, 0.04), rng.uniform(0.5, 0.6)])
    # The MANO translation is what moves the rest wrist J0(betas) to the wrist.
    translation = wrist - joints[0]
    vertices, joints = vertices + translation, joints + translation
    pose_y = np.zeros((len(ycb_ids), 3, 4))
    object_points = {}
    for row, object_id in enumerate(ycb_ids):
        rotation = Rotation.random(random_state=rng.integers(1 << 31)).as_matrix()
        if row == grasp_index:
            position = joints.mean(axis=0) + rng.normal(0.0, 0.01, 3)
        else:
            position = np.array([rng.choice([-0.18, 0.18]), rng.uniform(-0.1, 0.1), 0.7])
        pose_y[row] = np.column_stack([rotation, position])
        box, _ = box_mesh(object_sizes[object_id])
        object_points[object_id] = box @ rotation.T + position
    return {'pca': pca, 'global_orient': global_orient, 'mano_pose': mano_pose,
            'translation': translation, 'vertices': vertices, 'joints': joints,
            'pose_y': pose_y, 'object_points': object_points}


def write_dexycb_fixture(root, subjects=(0, 1), serials=(0, 1), n_sequences=2, n_frames=2,
                         seed=0, write_frames=True):
    """
    Write a DexYCB tree (the toolkit's layout) and return its ground truth.

    Sequence positions alternate right / left hands; the frame 0 of sequence position 1 has no
    hand (``pose_m`` zeros, joints -1, no 255 in ``seg``); in the last frame of sequence
    position 0 the non-grasped object's ``pose_y`` row is all zeros.

    :param root: folder to write (``$DEX_YCB_DIR``).
    :param subjects: subject indices (into ``dexycb.SUBJECTS``).
    :param serials: camera indices (into ``dexycb.SERIALS``) with images; intrinsics are
        written for all 8.
    :param n_sequences: sequences per subject (100 in the release; the split rules index them).
    :param n_frames: frames per camera.
    :param seed: random seed.
    :param write_frames: False writes only folders, ``meta.yml`` and calibration (fast, for
        split tests).
    :return: dict: ``samples`` {(subject, position, serial, frame): ground truth dict with
        K, joint_3d, joint_2d, vertices, mano_pose (48, mean included), pose_m, betas, side,
        object_id, object_rotation, object_translation, object_vertices (object frame), rgb
        (before JPEG), seg, depth_mm, has_hand}, ``sequences`` {(subject, position): folder}.
    """
    rng = np.random.default_rng(seed)
    root = os.fspath(root)
    fx, fy, ppx, ppy = _DEXYCB_INTRINSICS
    K = np.array([[fx, 0.0, ppx], [0.0, fy, ppy], [0.0, 0.0, 1.0]])
    for serial in dexycb.SERIALS:
        _write_yaml(os.path.join(root, 'calibration', 'intrinsics', '%s_640x480.yml' % serial),
                    {'color': {'fx': fx, 'fy': fy, 'ppx': ppx, 'ppy': ppy},
                     'depth': {'fx': fx, 'fy': fy, 'ppx': ppx, 'ppy': ppy}})
    extrinsics = {serial: [1.0, 0, 0, 0.1 * i, 0, 1.0, 0, 0, 0, 0, 1.0, 0]
                  for i, serial in enumerate(dexycb.SERIALS)}
    extrinsics['apriltag'] = [1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1.0, 0.8]
    _write_yaml(os.path.join(root, 'calibration', 'extrinsics_%s' % _EXTRINSICS_NAME,
                             'extrinsics.yml'),
                {'extrinsics': extrinsics, 'master': dexycb.SERIALS[0]})
    object_sizes = {}
    for object_id, name in dexycb.YCB_CLASSES.items():
        object_sizes[object_id] = rng.uniform(0.02, 0.06, 3)
        vertices, faces = box_mesh(object_sizes[object_id])
        write_obj(os.path.join(root, 'models', name, 'textured_simple.obj'), vertices, faces)

    samples = {}
    sequences = {}
    layers = {}
    for subject_index in subjects:
        subject = dexycb.SUBJECTS[subject_index]
        betas_by_side = {}
        for side in ('right', 'left'):
            betas_by_side[side] = rng.normal(0.0, 0.8, 10)
            _write_yaml(os.path.join(root, 'calibration', 'mano_%s_%s' % (subject, side),
                                     'mano.yml'), {'betas': betas_by_side[side].tolist()})
        for position in range(n_sequences):
            side = 'right' if position % 2 == 0 else 'left'
            sequence_name = '%s_%06d' % (subject[:8], 100000 + 7 * position)
            sequence_dir = os.path.join(root, subject, sequence_name)
            sequences[(subject_index, position)] = sequence_dir
            ycb_ids = [int(i) for i in rng.choice(np.arange(1, 22), 2, replace=False)]
            grasp_index = int(rng.integers(2))
            _write_yaml(os.path.join(sequence_dir, 'meta.yml'), {
                'serials': list(dexycb.SERIALS), 'num_frames': int(n_frames),
                'ycb_ids': ycb_ids, 'ycb_grasp_ind': grasp_index, 'mano_sides': [side],
                'mano_calib': ['%s_%s' % (subject, side)], 'extrinsics': _EXTRINSICS_NAME})
            for serial_index in serials:
                os.makedirs(os.path.join(sequence_dir, dexycb.SERIALS[serial_index]),
                            exist_ok=True)
            if not write_frames:
                continue
            if side not in layers:
                layers[side] = _standin_layer(side)
            betas = betas_by_side[side]
            for serial_index in serials:
                folder = os.path.join(sequence_dir, dexycb.SERIALS[serial_index])
                for frame in range(n_frames):
                    has_hand = not (position == 1 and frame == 0)
                    truth = _dexycb_frame(rng, K, layers[side], betas, object_sizes, ycb_ids,
                                          grasp_index)
                    if position == 0 and frame == n_frames - 1:
                        truth['pose_y'][1 - grasp_index] = 0.0
                    boxes = [(object_id, truth['object_points'][object_id])
                             for row, object_id in enumerate(ycb_ids)
                             if np.any(truth['pose_y'][row])]
                    rgb, labels, depth = render_blobs(
                        rng, dexycb.IMAGE_HEIGHT_PX, dexycb.IMAGE_WIDTH_PX, K,
                        truth['vertices'] if has_hand else None, boxes)
                    seg = np.where(labels == -1, dexycb.HAND_SEG_VALUE, labels).astype(np.uint8)
                    depth_mm = np.round(depth * 1000.0).astype(np.uint16)
                    if has_hand:
                        pose_m = np.concatenate([truth['global_orient'], truth['pca'],
                                                 truth['translation']])
                        joint_3d = truth['joints']
                        joint_2d = _project(joint_3d, K)
                    else:
                        pose_m = np.zeros(51)
                        joint_3d = -np.ones((21, 3))
                        joint_2d = -np.ones((21, 2))
                    cv2.imwrite(os.path.join(folder, 'color_%06d.jpg' % frame), rgb[..., ::-1],
                                [cv2.IMWRITE_JPEG_QUALITY, 95])
                    cv2.imwrite(os.path.join(folder, 'aligned_depth_to_color_%06d.png' % frame),
                                depth_mm)
                    np.savez_compressed(
                        os.path.join(folder, 'labels_%06d.npz' % frame), seg=seg,
                        pose_y=truth['pose_y'].astype(np.float32),
                        pose_m=pose_m.astype(np.float32)[None],
                        joint_3d=joint_3d.astype(np.float32)[None],
                        joint_2d=joint_2d.astype(np.float32)[None])
                    grasped = ycb_ids[grasp_index]
                    samples[(subject_index, position, dexycb.SERIALS[serial_index], frame)] = \
                        {'K': K, 'joint_3d': joint_3d, 'joint_2d': joint_2d,
                         'vertices': truth['vertices'], 'mano_pose': truth['mano_pose'],
                         'pose_m': pose_m, 'betas': betas, 'side': side, 'object_id': grasped,
                         'object_rotation': truth['pose_y'][grasp_index][:, :3],
                         'object_translation': truth['pose_y'][grasp_index][:, 3],
                         'object_vertices': box_mesh(object_sizes[grasped])[0],
                         'rgb': rgb, 'seg': seg, 'depth_mm': depth_mm, 'has_hand': has_hand}
    return {'samples': samples, 'sequences': sequences, 'object_sizes': object_sizes}


def _write_yaml(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as stream:
        yaml.safe_dump(data, stream, default_flow_style=None)


# ----------------------------------------------------------------------------------------------
# ObMan.

def _encode_depth(depth, mask):
    """Encode depth as ObMan does (uint8); returns (channel, true max, true min)."""
    channel = np.zeros(depth.shape, np.uint8)
    if not mask.any():
        return channel, 0.0, 0.0
    low, high = float(depth[mask].min()), float(depth[mask].max())
    span = max(high - low, 1e-6)
    channel[mask] = np.round(254.0 * (depth[mask] - low) / span + 1.0).astype(np.uint8)
    return channel, high, low


def write_obman_fixture(root, split='train', n=3, seed=0, obj_scale_in_affine=True,
                        write_shapenet=True):
    """
    Write an ObMan split and its ShapeNet meshes; return the ground truth (camera frame).

    Layout: ``root/obman/<split>/{rgb,segm,depth,meta}/%08d.*`` (ids 0, 3, 7, ...: not
    contiguous) and ``root/ShapeNetCore.v2/<class>/<id>/models/model_normalized.obj`` (and a
    ``.pkl`` cache for the first sample, ``surface_points.pkl``).

    :param root: folder to write.
    :param split: 'train', 'val' or 'test'.
    :param n: number of samples.
    :param seed: random seed.
    :param obj_scale_in_affine: True puts the object scale inside ``affine_transform``; False
        writes a rigid matrix (the loader must then apply ``obj_scale``).
    :param write_shapenet: False leaves the meshes out (the release does not ship them).
    :return: dict id -> {rgb, joints_cam, vertices_cam, joints_2d, K, global_orient (camera),
        articulation (45, no mean: flat-hand), object_rotation, object_translation (camera_from
        object, object frame = normalized model x scale), object_vertices_cam, object_scale,
        hand_mask, object_mask, depth (full render, metres, 0 = none), class_id, sample_id}.
    """
    rng = np.random.default_rng(seed)
    split_dir = os.path.join(os.fspath(root), 'obman', split)
    for folder in ('rgb', 'rgb_obj', 'rgb_hand', 'segm', 'depth', 'meta', 'coords2d'):
        os.makedirs(os.path.join(split_dir, folder), exist_ok=True)
    K = obman.CAMERA_K.copy()
    flip = obman.OPENGL_TO_OPENCV
    layer = _standin_layer('right')
    truth_by_id = {}
    for count in range(n):
        sample_id = 3 * count + count % 2 + count // 2
        pca = rng.normal(0.0, 0.8, 45)
        with torch.no_grad():
            articulation = layer.pca_to_axis_angle(torch.as_tensor(pca[None], dtype=torch.float32),
                                                   add_mean=False)[0].double().numpy()
        global_orient = Rotation.random(random_state=rng.integers(1 << 31)).as_rotvec()
        vertices, joints = common.mano_forward(layer, np.concatenate([global_orient,
                                                                      articulation]), np.zeros(10))
        distance = rng.uniform(0.5, 0.8)
        shift = np.array([0.0, 0.0, distance]) - joints[9]  # middle MCP on the optical axis
        vertices, joints = vertices + shift, joints + shift

        class_id = obman.SHAPENET_CATEGORIES[count % len(obman.SHAPENET_CATEGORIES)][0]
        shapenet_id = ''.join(rng.choice(list('0123456789abcdef'), 32))
        half = rng.uniform(0.5, 1.0, 3)
        half = 0.5 * half / np.linalg.norm(half)  # ShapeNet normalised: unit diagonal
        normalized, faces = box_mesh(half)
        scale = float(rng.uniform(0.12, 0.2))
        object_rotation = Rotation.random(random_state=rng.integers(1 << 31)).as_matrix()
        object_translation = joints[[0, 5, 9, 13, 17]].mean(axis=0) + rng.normal(0.0, 0.01, 3)
        object_vertices_cam = (normalized * scale) @ object_rotation.T + object_translation
        # World (OpenGL camera) frame: X_world = flip X_cam (flip is its own inverse).
        rotation_world = flip @ object_rotation
        affine = np.eye(4)
        affine[:3, :3] = rotation_world * (scale if obj_scale_in_affine else 1.0)
        affine[:3, 3] = flip @ object_translation

        rgb, labels, depth = render_blobs(rng, 256, 256, K, vertices,
                                          [(obman.OBJECT_SEG_VALUE, object_vertices_cam)])
        hand_mask = labels == -1
        object_mask = labels == obman.OBJECT_SEG_VALUE
        hand_value = int(rng.choice(obman.RIGHT_HAND_SEG_VALUES))
        full = np.where(hand_mask, hand_value, np.where(object_mask, obman.OBJECT_SEG_VALUE, 0))
        arm = np.zeros_like(hand_mask)
        arm[240:, :40] = True  # a patch of "arm" (another body part value)
        full = np.where(arm & (full == 0), 5, full)
        segm = np.stack([full, np.where(hand_mask, hand_value, 0),
                         np.where(object_mask, obman.OBJECT_SEG_VALUE, 0)], 2).astype(np.uint8)
        channels = [_encode_depth(depth, hand_mask | object_mask),
                    _encode_depth(depth, hand_mask), _encode_depth(depth, object_mask)]
        prefix = '%08d' % sample_id
        # cv2 writes arrays as BGR: channel 0 (full) lands in the file's blue channel.
        cv2.imwrite(os.path.join(split_dir, 'segm', prefix + '.png'), segm)
        cv2.imwrite(os.path.join(split_dir, 'depth', prefix + '.png'),
                    np.stack([c[0] for c in channels], 2))
        for folder in ('rgb', 'rgb_obj', 'rgb_hand'):
            cv2.imwrite(os.path.join(split_dir, folder, prefix + '.jpg'), rgb[..., ::-1],
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
        grasp_rotation = rng.normal(0.0, 1.0, 3)
        hand_pose = np.concatenate([grasp_rotation, articulation])
        joints_world = joints @ flip
        meta = {
            'coords_3d': joints_world.astype(np.float32),
            'coords_2d': _project(joints, K).astype(np.float32),
            'verts_3d': (vertices @ flip).astype(np.float32),
            'side': 'right',
            'hand_pose': hand_pose.tolist(),
            'pca_pose': pca.astype(np.float64),
            'hand_global_rot': grasp_rotation.tolist(),
            'hand_trans': rng.normal(0.0, 50.0, 3).tolist(),
            'mano_pose': pca.astype(np.float32),
            'pose': np.concatenate([rng.normal(0, 0.2, 66), np.zeros(45), pca]).astype(
                np.float32),
            'shape': np.zeros(10, np.float32),
            'trans': rng.normal(0.0, 0.1, 3).astype(np.float32),
            'z': float(distance),
            'affine_transform': affine.astype(np.float32),
            'obj_scale': scale,
            'obj_path': '/sequoia/data2/dataset/shapenet/ShapeNetCore.v2/%s/%s/models/'
                        'model_normalized.obj' % (class_id, shapenet_id),
            'class_id': class_id,
            'sample_id': shapenet_id,
            'obj_texture': '/textures/%d.jpg' % count,
            'grasp_quality': 0.1, 'grasp_epsilon': 0.05, 'grasp_volume': 0.2,
            # Swapped names, as the renderer stored them: *_min holds the true maximum.
            'depth_min': np.float32(channels[0][1]), 'depth_max': np.float32(channels[0][2]),
            'hand_depth_min': np.float32(channels[1][1]),
            'hand_depth_max': np.float32(channels[1][2]),
            'obj_depth_min': np.float32(channels[2][1]),
            'obj_depth_max': np.float32(channels[2][2]),
            'obj_visibility_ratio': float(object_mask.sum()) / max(1.0, float(
                object_mask.sum())),
            'bg_path': '/backgrounds/%d.jpg' % count, 'body_tex': '/body/%d.jpg' % count,
            'sh_coeffs': rng.normal(0.0, 1.0, 9),
        }
        with open(os.path.join(split_dir, 'meta', prefix + '.pkl'), 'wb') as stream:
            pickle.dump(meta, stream, protocol=2)
        if write_shapenet:
            model_dir = os.path.join(os.fspath(root), 'ShapeNetCore.v2', class_id, shapenet_id,
                                     'models')
            write_obj(os.path.join(model_dir, 'model_normalized.obj'), normalized, faces)
            if count == 0:
                with open(os.path.join(model_dir, 'model_normalized.pkl'), 'wb') as stream:
                    pickle.dump({'vertices': normalized.astype(np.float32),
                                 'faces': faces.astype(np.int32)}, stream)
            with open(os.path.join(model_dir, 'surface_points.pkl'), 'wb') as stream:
                pickle.dump(normalized.astype(np.float32), stream)
        decoded = np.zeros(depth.shape)
        visible = hand_mask | object_mask
        decoded[visible] = depth[visible]
        truth_by_id[sample_id] = {
            'rgb': rgb, 'joints_cam': joints, 'vertices_cam': vertices,
            'joints_2d': _project(joints, K),
            'K': K, 'global_orient': global_orient, 'articulation': articulation,
            'object_rotation': object_rotation, 'object_translation': object_translation,
            'object_vertices_cam': object_vertices_cam, 'object_scale': scale,
            'hand_mask': hand_mask, 'object_mask': object_mask, 'depth': decoded,
            'class_id': class_id, 'sample_id': shapenet_id}
    return truth_by_id


def main(argv=None):
    """Write a fixture tree: ``python -m hand_object_pose_ros.data.fixtures dexycb DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('dataset', choices=('dexycb', 'obman'))
    parser.add_argument('root')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.dataset == 'dexycb':
        truth = write_dexycb_fixture(args.root, seed=args.seed)
        loaded = dexycb.DexYCB(args.root, 's0', 'train')
    else:
        truth = write_obman_fixture(args.root, seed=args.seed)
        loaded = obman.ObMan(args.root, 'train')
    print('wrote %d samples under %s; the loader indexes %d'
          % (len(truth['samples'] if args.dataset == 'dexycb' else truth), args.root,
             len(loaded)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
