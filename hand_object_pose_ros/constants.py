"""Named constants shared by the whole package: MANO sizes, joint order, skeleton, crop size."""

# MANO model sizes (MANO v1.2).
NUM_MANO_VERTICES = 778
NUM_MANO_FACES = 1538
NUM_MANO_KINEMATIC_JOINTS = 16
NUM_MANO_SHAPE_PARAMS = 10
NUM_MANO_POSE_PARAMS = 45  # 15 finger joints x axis-angle 3
NUM_MANO_POSE_WITH_GLOBAL = 48  # global orientation 3 + finger pose 45
NUM_POSE_BLENDSHAPES = 135  # 15 joints x 9 rotation-matrix entries
NUM_HAND_JOINTS = 21

# MANO's kinematic tree (kintree_table[0]); joint order of the model file:
# 0 wrist, 1-3 index, 4-6 middle, 7-9 pinky, 10-12 ring, 13-15 thumb.
MANO_KINEMATIC_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

# Fingertip vertices of the right hand, in output order thumb, index, middle, ring, pinky.
FINGERTIP_VERTEX_IDS = (745, 317, 444, 556, 673)

# The 21 output joints: the 16 kinematic joints followed by the 5 fingertips (indices 16-20,
# thumb..pinky), reordered to wrist, thumb 1-3, thumb tip, index 1-3, tip, middle, ring, pinky.
# This is DexYCB's joint_3d order and manopth's output order.
MANO_TO_OUTPUT_JOINT_ORDER = (
    0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)

HAND_JOINT_NAMES = (
    'wrist',
    'thumb1', 'thumb2', 'thumb3', 'thumb_tip',
    'index1', 'index2', 'index3', 'index_tip',
    'middle1', 'middle2', 'middle3', 'middle_tip',
    'ring1', 'ring2', 'ring3', 'ring_tip',
    'pinky1', 'pinky2', 'pinky3', 'pinky_tip',
)

# Parent of each of the 21 output joints (-1 for the wrist): bones of the skeleton.
HAND_JOINT_PARENTS = (
    -1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)

WRIST_JOINT_INDEX = 0
MIDDLE_MCP_JOINT_INDEX = 9

# Network input: a square crop of this many pixels around the hand.
DEFAULT_CROP_SIZE_PX = 256
# The hand box is squared and enlarged by this factor before cropping.
DEFAULT_BBOX_SCALE = 1.5

# Object pose vector of the paper (eq. 7): t1 t2 t3 r11 r21 r31 r12 r22 r32.
POSE9D_SIZE = 9
# Corners of an object's axis-aligned bounding box (ObjectModel.corners()).
NUM_BOX_CORNERS = 8

# Name of the node's status in diagnostic_msgs/DiagnosticArray on /diagnostics.
PIPELINE_DIAGNOSTIC_NAME = 'hand_object_pose: pipeline'
