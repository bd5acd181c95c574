"""Losses: units, the biomechanical constraints on the stand-in hand, the beta schedule."""

import math
import time

from helpers import LITE_YAML
from helpers import make_batch
import pytest
import torch

from hand_object_pose_ros import geometry
from hand_object_pose_ros import losses
from hand_object_pose_ros.config import load_model_config
from hand_object_pose_ros.config import LossConfig
from hand_object_pose_ros.mano import ManoLayer
from hand_object_pose_ros.modeling import build_model

pytestmark = pytest.mark.usefixtures('one_torch_thread')
# MANO's joint order of the 45 finger-pose values: index, middle, pinky, ring, thumb (3 each).
NON_THUMB_JOINTS = list(range(12))
THUMB_JOINTS = [12, 13, 14]
FLEXION_AXIS = 2  # the model's z axis: positive rotation curls a right hand's fingers


@pytest.fixture(scope='module')
def hand_layer():
    return ManoLayer.standin(side='right', flat_hand_mean=True)


def finger_pose(layer, angle, joints=NON_THUMB_JOINTS, axis=FLEXION_AXIS):
    """(1, 45) finger pose rotating the given joints by ``angle`` rad about one axis."""
    pose = torch.zeros(15, 3)
    pose[joints, axis] = angle
    return pose.view(1, 45)


def hand_joints(layer, pose, global_orient=None):
    global_orient = torch.zeros(pose.shape[0], 3) if global_orient is None else global_orient
    return layer(global_orient, pose, torch.zeros(pose.shape[0], 10)).joints


def test_beta_vae_schedule_matches_the_paper():
    epochs = (0, 9, 10, 19, 20, 39, 40, 59, 60, 80, 100, 199)
    expected = (0.5, 0.5, 0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4, 1e-4, 1e-4)
    for epoch, value in zip(epochs, expected):
        assert math.isclose(losses.beta_vae_schedule(epoch), value, rel_tol=1e-9), epoch


def test_bmc_is_zero_on_natural_stand_in_poses(hand_layer):
    poses = [torch.zeros(1, 45), hand_layer.hands_mean.view(1, 45),
             finger_pose(hand_layer, 0.3), finger_pose(hand_layer, 0.8),
             finger_pose(hand_layer, 1.3),  # a fist
             finger_pose(hand_layer, -0.15),  # slight extension
             finger_pose(hand_layer, 0.5, THUMB_JOINTS)]
    joints = hand_joints(hand_layer, torch.cat(poses))
    assert float(losses.bmc_loss(joints)) < 1e-6
    # Invariant to the global rotation and the unit of the joints.
    rotated = hand_joints(hand_layer, torch.cat(poses),
                          torch.tensor([[0.3, -2.0, 1.0]]).expand(len(poses), 3))
    assert float(losses.bmc_loss(rotated * 100.0)) < 1e-6


def test_bmc_grows_with_hyperextension(hand_layer):
    values = [float(losses.bmc_loss(hand_joints(hand_layer, finger_pose(hand_layer, angle))))
              for angle in (-0.4, -0.7, -1.0, -1.3)]
    assert values[0] > 1e-3
    assert all(later > earlier for earlier, later in zip(values, values[1:]))
    terms = losses.bmc_loss_terms(hand_joints(hand_layer, finger_pose(hand_layer, -1.0)))
    assert float(terms['bmc_joint_angle']) > 0.1


def test_bmc_flags_bones_and_palm(hand_layer):
    joints = hand_joints(hand_layer, torch.zeros(1, 45))
    stretched = joints.clone()
    stretched[:, 8] += 3.0 * (joints[:, 8] - joints[:, 7])  # index tip bone 4x longer
    # (4 x 0.28 - 0.40)^2 / 20 bones ~ 0.026 relative-length^2.
    assert float(losses.bmc_loss_terms(stretched)['bmc_bone_length']) > 0.01
    folded = joints.clone()
    # Swing the pinky's MCP far out of the palm plane (a broken palm).
    palm_normal = torch.linalg.cross(joints[:, 5] - joints[:, 0], joints[:, 17] - joints[:, 0])
    palm_normal = palm_normal / palm_normal.norm()
    folded[:, 17:21] += 0.06 * palm_normal[:, None]
    terms = losses.bmc_loss_terms(folded)
    assert float(terms['bmc_palm_bend'] + terms['bmc_root_angle']) > 1e-3


def test_bmc_gradient_pushes_back_towards_the_limits(hand_layer):
    pose = finger_pose(hand_layer, -1.0).requires_grad_(True)
    loss = losses.bmc_loss(hand_joints(hand_layer, pose))
    loss.backward()
    # Decreasing the loss means increasing (un-hyperextending) the flexion angles.
    assert float(pose.grad.view(15, 3)[NON_THUMB_JOINTS, FLEXION_AXIS].sum()) < 0.0


def test_joint_loss_is_in_square_centimetres():
    true = torch.zeros(2, 21, 3)
    pred = true.clone()
    pred[..., 0] += 0.01  # 1 cm on every joint
    assert math.isclose(float(losses.joints_3d_loss(pred, true)), 1.0, rel_tol=1e-5)


def test_heatmap_loss_is_zero_at_the_target_and_soft_argmax_finds_it():
    from hand_object_pose_ros.modeling.hand_head import soft_argmax_px

    # Away from the border (a border truncates the Gaussian and biases its mean inwards).
    joints = torch.tensor([[[25.0, 20.0], [33.3, 40.7], [70.0, 5.0]]])  # last: outside 64 px
    targets, visible = losses.heatmap_targets(joints, 8, 8, 8, 8.0)
    assert visible.tolist() == [[True, True, False]]
    perfect = torch.log(targets.clamp_min(1e-30))
    assert float(losses.heatmap_loss(perfect, joints, 8, 8.0)) < 1e-4
    assert float(losses.heatmap_loss(torch.zeros(1, 3, 8, 8), joints, 8, 8.0)) > 0.1
    uv = soft_argmax_px(perfect, 8)
    assert torch.allclose(uv[0, :2], joints[0, :2], atol=0.5)


def test_kl_and_pose_terms():
    assert float(losses.kl_divergence(torch.zeros(3, 8), torch.zeros(3, 8))) == 0.0
    assert float(losses.kl_divergence(torch.ones(3, 8), torch.zeros(3, 8))) == 0.5
    pose = torch.zeros(1, 9)
    shifted = pose.clone()
    shifted[0, 0] = 0.1  # 10 cm -> 1 dm
    assert math.isclose(float(losses.pose9d_loss(shifted, pose)), 1.0 / 9.0, rel_tol=1e-5)


@pytest.mark.slow
def test_tiny_overfit_drives_the_total_loss_down():
    """The lite network at 64 px memorises 4 samples in 30 steps: the total loss falls >20x."""
    torch.manual_seed(0)
    model = build_model(load_model_config(
        LITE_YAML, ['input_size_px=64', 'object_ids=[1, 2, 3]']))
    batch = make_batch(model, batch=4, seed=1)
    index = model.object_indices(batch['object_id'])
    target = losses.pose9d_target(batch)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    cfg = LossConfig()
    history = []
    start = time.monotonic()
    for _ in range(30):
        terms = losses.compute_losses(model(batch['image'], index, target), batch, cfg,
                                      beta_vae=1e-3)
        optimizer.zero_grad()
        terms['total'].backward()
        optimizer.step()
        history.append({name: float(value.detach()) for name, value in terms.items()})
    elapsed = time.monotonic() - start
    first, last = history[0], history[-1]
    assert all(math.isfinite(value) for value in last.values())
    assert last['total'] < first['total'] / 20.0, (first['total'], last['total'], elapsed)
    assert last['joints_3d'] < first['joints_3d'] / 20.0
    assert last['pose_from_image'] < first['pose_from_image'] / 3.0
    assert last['heatmap'] < first['heatmap'] / 3.0
    assert last['classifier_accuracy'] == 1.0


def tiny_training_pass():
    """Return (model, batch, output) of a 64 px lite network's training pass on 3 samples."""
    torch.manual_seed(0)
    model = build_model(load_model_config(LITE_YAML, ['input_size_px=64',
                                                      'object_ids=[1, 2, 3]']))
    batch = make_batch(model, batch=3, seed=2)
    out = model(batch['image'], model.object_indices(batch['object_id']),
                losses.pose9d_target(batch))
    return model, batch, out


def test_compute_losses_names_and_total():
    model, batch, out = tiny_training_pass()
    cfg = LossConfig()
    terms = losses.compute_losses(out, batch, cfg, beta_vae=0.1)
    names = {'joints_3d', 'mano_pose', 'mano_shape', 'bmc', 'heatmap', 'hand', 'branch1',
             'branch2', 'pose_from_pose', 'image_from_pose', 'kl_pose', 'pose_from_image',
             'image_from_image', 'kl_image', 'classifier', 'classifier_accuracy', 'total'}
    assert names <= set(terms)
    for name, value in terms.items():
        assert value.dim() == 0 and torch.isfinite(value), name
    hand = (0.5 * terms['joints_3d'] + 5e-7 * terms['mano_pose'] + 5e-5 * terms['mano_shape']
            + terms['bmc'] + terms['heatmap'])
    assert torch.allclose(terms['hand'], hand)
    branch2 = terms['pose_from_image'] + terms['image_from_image'] + 0.1 * terms['kl_image']
    assert torch.allclose(terms['branch2'], branch2)
    total = terms['hand'] + terms['branch1'] + terms['branch2'] + 0.1 * terms['classifier']
    assert torch.allclose(terms['total'], total)


def _box_pose9d(rotation, translation):
    return geometry.rt_to_pose9d(rotation[None], torch.as_tensor(translation)[None])


def test_pose_corner_loss_known_answers():
    """Box of half-sizes (3, 2, 1) cm: a shift, a half turn about z, and the 6D scale."""
    half = torch.tensor([0.03, 0.02, 0.01])
    index = torch.arange(8)
    bits = torch.stack([index & 1, (index >> 1) & 1, (index >> 2) & 1], dim=1).bool()
    corners = torch.where(bits, half, -half)[None]
    identity = torch.eye(3)
    true_pose = _box_pose9d(identity, [0.0, 0.0, 0.5])
    assert float(losses.pose_corner_loss(true_pose, true_pose, corners)) < 1e-4
    shifted = _box_pose9d(identity, [0.04, 0.0, 0.5])
    assert float(losses.pose_corner_loss(shifted, true_pose, corners)) == pytest.approx(4.0)
    # A half turn about z moves every corner by twice its distance from the axis, sqrt(13) cm.
    half_turn = torch.diag(torch.tensor([-1.0, -1.0, 1.0]))
    turned = _box_pose9d(half_turn, [0.0, 0.0, 0.5])
    assert float(losses.pose_corner_loss(turned, true_pose, corners)) == pytest.approx(
        2 * math.sqrt(13), rel=1e-5)
    # Gram-Schmidt first: scaling the 6D entries (the L2's pull towards zero) changes nothing.
    scaled = true_pose.clone()
    scaled[:, 3:] *= 0.05
    assert float(losses.pose_corner_loss(scaled, true_pose, corners)) < 1e-4
    assert float(losses.pose9d_loss(scaled, true_pose)) > 0.1


def test_corner_term_enters_the_branches_and_needs_the_corners():
    model, batch, out = tiny_training_pass()
    cfg = LossConfig(pose_corners=2.0)
    with pytest.raises(ValueError, match='pose_corners'):
        losses.compute_losses(out, batch, cfg, beta_vae=0.1)
    corners = losses.object_box_corners(model.object_ids)
    assert corners.shape == (3, 8, 3)
    terms = losses.compute_losses(out, batch, cfg, beta_vae=0.1, object_corners=corners)
    assert terms['corners_from_image'].item() > 0 and terms['corners_from_pose'].item() > 0
    branch2 = (terms['pose_from_image'] + 2.0 * terms['corners_from_image']
               + terms['image_from_image'] + 0.1 * terms['kl_image'])
    assert torch.allclose(terms['branch2'], branch2)
    branch1 = (terms['pose_from_pose'] + 2.0 * terms['corners_from_pose']
               + terms['image_from_pose'] + 0.1 * terms['kl_pose'])
    assert torch.allclose(terms['branch1'], branch1)


def test_object_corners_project_into_the_crop_and_mirror():
    """Box (0..10 cm)^3 at 1 m, f = 100 px: corners at 32 + 10 px steps; mirrored: 32 - 10."""
    crop_k = torch.tensor([[[100.0, 0.0, 32.0], [0.0, 100.0, 32.0], [0.0, 0.0, 1.0]]])
    corners = torch.tensor([[[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.1, 0.0]]])
    batch = {'crop_K': crop_k, 'object_rotation': torch.eye(3)[None],
             'object_translation': torch.tensor([[0.0, 0.0, 1.0]]),
             'mirrored': torch.tensor([False])}
    pixels = losses.object_corners_2d_crop_px(batch, corners)
    assert torch.allclose(pixels, torch.tensor([[[32.0, 32.0], [42.0, 32.0], [32.0, 42.0]]]))
    batch['mirrored'] = torch.tensor([True])
    pixels = losses.object_corners_2d_crop_px(batch, corners)
    assert torch.allclose(pixels, torch.tensor([[[32.0, 32.0], [22.0, 32.0], [32.0, 42.0]]]))


def test_object_corner_heatmap_head_trains_and_inference_ignores_it():
    torch.manual_seed(0)
    overrides = ['input_size_px=64', 'object_ids=[1, 2, 3]']
    model = build_model(load_model_config(LITE_YAML, overrides + ['object_corner_heatmaps=true']))
    plain = build_model(load_model_config(LITE_YAML, overrides))
    batch = make_batch(model, batch=3, seed=2)
    batch['object_translation'] = batch['object_translation_rel'] + torch.tensor([0, 0, 0.5])
    batch['mirrored'] = torch.zeros(3, dtype=torch.bool)
    index = model.object_indices(batch['object_id'])
    out = model(batch['image'], index, losses.pose9d_target(batch))
    assert out.object_corner_heatmaps.shape == (3, 8, 8, 8)
    assert out.object_corner_stride_px == 8
    corners = losses.object_box_corners(model.object_ids)
    cfg = LossConfig(object_corner_heatmap=3.0)
    terms = losses.compute_losses(out, batch, cfg, beta_vae=0.1, object_corners=corners)
    total = (terms['hand'] + terms['branch1'] + terms['branch2'] + 0.1 * terms['classifier']
             + 3.0 * terms['object_corner_heatmap'])
    assert torch.allclose(terms['total'], total)
    terms['total'].backward()
    assert model.object_corner_head[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='object_corner_heatmaps'):
        losses.compute_losses(plain(batch['image'], index, losses.pose9d_target(batch)), batch,
                              cfg, beta_vae=0.1, object_corners=corners)
    # The head is training-only: the same weights without it predict the same outputs.
    plain.load_state_dict({name: value for name, value in model.state_dict().items()
                           if not name.startswith('object_corner_head.')})
    with_head, without = model.predict(batch['image']), plain.predict(batch['image'])
    assert torch.allclose(with_head.object_rotation, without.object_rotation)
    assert torch.allclose(with_head.joints, without.joints)
