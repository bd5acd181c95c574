"""
config/fastdds_shm.xml lets 640x480 rgb8 images at 30 Hz through Fast DDS's shared memory.

Two real processes over DDS: a best-effort publisher of 640x480 rgb8 images at 30 Hz for about
3 s, and a subscriber counting what arrives. With the shipped profile nearly all frames arrive;
without it (Fast DDS's default 512 KB segment) most are lost here (measured and reported, not
asserted: it depends on the Fast DDS version).
"""

import json
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROFILE_PATH = os.path.join(REPO_ROOT, 'config', 'fastdds_shm.xml')
PUBLISH_RATE_HZ = 30.0
PUBLISH_DURATION_S = 3.0

# One script for both roles, run as `python -c CHILD_SCRIPT pub|sub TOPIC`.
CHILD_SCRIPT = r"""
import json
import select
import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

role, topic, rate_hz, duration_s = sys.argv[1], sys.argv[2], float(sys.argv[3]), \
    float(sys.argv[4])
rclpy.init()
node = Node('fastdds_profile_' + role)
if role == 'pub':
    publisher = node.create_publisher(Image, topic, qos_profile_sensor_data)
    message = Image(height=480, width=640, encoding='rgb8', step=640 * 3)
    message.data = bytes(range(256)) * (480 * 640 * 3 // 256)
    deadline = time.monotonic() + 20.0
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    matched = publisher.get_subscription_count() > 0
    time.sleep(0.5)  # let the subscriber's side of the match settle
    sent = 0
    start = time.monotonic()
    while time.monotonic() - start < duration_s:
        message.header.frame_id = str(sent)
        publisher.publish(message)
        sent += 1
        time.sleep(max(0.0, start + sent / rate_hz - time.monotonic()))
    time.sleep(0.5)
    print(json.dumps({'sent': sent, 'matched': matched}), flush=True)
else:
    received = set()

    def on_image(message):
        if len(message.data) == 480 * 640 * 3:
            received.add(message.header.frame_id)

    node.create_subscription(Image, topic, on_image, qos_profile_sensor_data)
    print('ready', flush=True)
    hard_deadline = time.monotonic() + duration_s
    # Count until the test says the publisher has finished (a line on stdin), then drain.
    while time.monotonic() < hard_deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        if select.select([sys.stdin], [], [], 0.0)[0]:
            sys.stdin.readline()
            hard_deadline = min(hard_deadline, time.monotonic() + 0.3)
    print(json.dumps({'received': len(received)}), flush=True)
node.destroy_node()
rclpy.shutdown()
"""


def measure_delivery(topic, profile_path):
    """
    Run the publisher and the subscriber once.

    :param topic: topic name, unique per measurement.
    :param profile_path: Fast DDS XML profile for both processes, or None for Fast DDS's
        defaults.
    :return: (sent, received) frame counts.
    """
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    for name in ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE'):
        env.pop(name, None)
    if profile_path is not None:
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = profile_path
    subscriber = subprocess.Popen(
        [sys.executable, '-c', CHILD_SCRIPT, 'sub', topic, str(PUBLISH_RATE_HZ), '60'],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert subscriber.stdout.readline().strip() == 'ready', subscriber.stderr.read()
        publisher = subprocess.run(
            [sys.executable, '-c', CHILD_SCRIPT, 'pub', topic, str(PUBLISH_RATE_HZ),
             str(PUBLISH_DURATION_S)],
            env=env, capture_output=True, text=True, timeout=60)
        assert publisher.returncode == 0, publisher.stderr
        sub_out, sub_err = subscriber.communicate('stop\n', timeout=60)
        assert subscriber.returncode == 0, sub_err
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
            subscriber.wait()
    published = json.loads(publisher.stdout.strip().splitlines()[-1])
    assert published['matched'], 'the subscriber was never discovered'
    received = json.loads(sub_out.strip().splitlines()[-1])['received']
    return published['sent'], received


@pytest.mark.ros
@pytest.mark.slow
def test_profile_delivers_camera_images_at_30_hz():
    """With config/fastdds_shm.xml at least 70% of 640x480 best-effort frames arrive."""
    assert os.path.isfile(PROFILE_PATH)
    sent_with, received_with = measure_delivery('fastdds_profile_with', PROFILE_PATH)
    sent_without, received_without = measure_delivery('fastdds_profile_without', None)
    report = ('640x480 rgb8 best-effort at %.0f Hz: with config/fastdds_shm.xml %d/%d arrived; '
              'with Fast DDS defaults %d/%d arrived'
              % (PUBLISH_RATE_HZ, received_with, sent_with, received_without, sent_without))
    print(report)
    assert sent_with >= 0.8 * PUBLISH_RATE_HZ * PUBLISH_DURATION_S, report
    assert received_with >= 0.7 * sent_with, report
