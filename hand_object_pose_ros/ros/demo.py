"""
The end-to-end demo: synthetic camera -> perception node -> monitor, three processes over DDS.

``python -m hand_object_pose_ros.ros.demo`` (``make demo``) starts, as separate processes,

1. the synthetic camera (:mod:`hand_object_pose_ros.ros.synthetic_camera`): pre-renders a pool
   of frames, then publishes RealSense-like topics at 30 Hz plus the ground truth;
2. the perception node (:mod:`hand_object_pose_ros.ros.node`), remapped onto those topics,
   with the bundled checkpoint ``models/demo_lite.pt`` when it exists, else random weights
   from ``config/model_lite.yaml`` (the summary says so);
3. the monitor (:mod:`hand_object_pose_ros.ros.monitor`): waits for the node's first output,
   measures for ``--duration`` seconds, writes ``summary.json``, overlay PNGs and a GIF.

Then it prints a one-line summary and exits 0, or non-zero when a child died (its stderr tail is
shown) or no frame was processed. Ctrl-C stops the children cleanly. Processes are spawned with
:mod:`subprocess` (no launch_ros needed). Children get ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``
and the shared-memory Fast DDS profile ``config/fastdds_shm.xml`` unless already set.
"""

import argparse
import collections
import ctypes
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import hand_object_pose_ros
from hand_object_pose_ros.ros.synthetic_camera import CAMERA_INFO_TOPIC
from hand_object_pose_ros.ros.synthetic_camera import DEPTH_TOPIC
from hand_object_pose_ros.ros.synthetic_camera import HAND_BBOX_TOPIC
from hand_object_pose_ros.ros.synthetic_camera import IMAGE_TOPIC

PACKAGE_NAME = 'hand_object_pose_ros'
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(hand_object_pose_ros.__file__)))
DEFAULT_CHECKPOINT = os.path.join('models', 'demo_lite.pt')
DEFAULT_MODEL_CONFIG = os.path.join('config', 'model_lite.yaml')
FASTDDS_PROFILE = os.path.join('config', 'fastdds_shm.xml')
SUMMARY_FILE_NAME = 'summary.json'
STDERR_TAIL_LINES = 40
STOP_TIMEOUT_S = 20.0
PR_SET_PDEATHSIG = 1


class DemoError(RuntimeError):
    """The demo could not run to the end (a child died, nothing was processed, ...)."""


def resolve_package_path(relative_path):
    """
    Find a file shipped with the package.

    :param relative_path: path such as ``models/demo_lite.pt``; an absolute path is kept.
    :return: absolute path of the first existing candidate (current directory, the package's
        share directory when ament_index_python knows it, the source tree), or None.
    """
    if os.path.isabs(relative_path):
        return relative_path if os.path.exists(relative_path) else None
    candidates = [os.path.abspath(relative_path)]
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(os.path.join(get_package_share_directory(PACKAGE_NAME),
                                       relative_path))
    except Exception:  # not installed in an ament prefix: the source tree still works
        pass
    candidates.append(os.path.join(SOURCE_ROOT, relative_path))
    for candidate in candidates:
        if os.path.exists(candidate):
            return candidate
    return None


def parse_args(argv=None):
    """Parse the command line (see ``--help``)."""
    parser = argparse.ArgumentParser(
        prog='python -m hand_object_pose_ros.ros.demo',
        description='Synthetic camera -> hand_object_pose node -> monitor, over real DDS.')
    parser.add_argument('--duration', type=float, default=30.0,
                        help='seconds of streaming measured after the node is up (30)')
    parser.add_argument('--pool', type=int, default=60,
                        help='frames pre-rendered by the synthetic camera, then looped (60)')
    parser.add_argument('--rate', type=float, default=30.0, help='camera rate in Hz (30)')
    parser.add_argument('--width', type=int, default=0,
                        help='image width in pixels (0: generator default, 640)')
    parser.add_argument('--height', type=int, default=0,
                        help='image height in pixels (0: generator default, 480)')
    parser.add_argument('--seed', type=int, default=0, help='synthetic scene seed')
    parser.add_argument('--checkpoint', default=None,
                        help='network checkpoint (default: %s when it exists, else random '
                             'weights)' % DEFAULT_CHECKPOINT)
    parser.add_argument('--model-config', default=DEFAULT_MODEL_CONFIG,
                        help='model config for random weights (%s)' % DEFAULT_MODEL_CONFIG)
    parser.add_argument('--mano-model-dir', default='',
                        help='folder with the real MANO_RIGHT.pkl (default: stand-in MANO)')
    parser.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'))
    parser.add_argument('--object-id', default=None,
                        help="object id given to the node (int or 'auto'; node default)")
    parser.add_argument('--no-depth', action='store_true',
                        help='do not give the node the aligned depth image')
    parser.add_argument('--output-dir', default='demo_output',
                        help='folder for summary.json, overlays, GIF and logs (demo_output)')
    parser.add_argument('--startup-timeout', type=float, default=300.0,
                        help="seconds to wait for the node's first output (300)")
    parser.add_argument('--quiet', action='store_true', help="do not echo the children's output")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.pool <= 0 or args.rate <= 0:
        parser.error('--duration, --pool and --rate must be positive')
    return args


def child_environment():
    """Return the environment for the children: local discovery, the SHM profile, this code."""
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if not env.get('FASTDDS_DEFAULT_PROFILES_FILE'):
        profile = resolve_package_path(FASTDDS_PROFILE)
        if profile is not None:
            env['FASTDDS_DEFAULT_PROFILES_FILE'] = profile
    # The children import the same package as this process.
    paths = [SOURCE_ROOT] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]
    env['PYTHONPATH'] = os.pathsep.join(dict.fromkeys(paths))
    env['PYTHONUNBUFFERED'] = '1'
    return env


def ros_param(name, value):
    """Return ``['-p', 'name:=value']`` with a YAML-safe value."""
    if isinstance(value, bool):
        text = 'true' if value else 'false'
    elif isinstance(value, str):
        text = json.dumps(value) if value == '' or ':' in value or ' ' in value else value
    else:
        text = repr(value)
    return ['-p', '%s:=%s' % (name, text)]


def model_choice(args):
    """
    Decide the node's weights.

    :return: (checkpoint absolute path or '', model config absolute path or '', description
        for the summary line).
    :raises DemoError: when ``--checkpoint`` is given but missing, or no model config exists
        for random weights.
    """
    if args.checkpoint:
        checkpoint = resolve_package_path(args.checkpoint)
        if checkpoint is None:
            raise DemoError('checkpoint not found: %s' % args.checkpoint)
        return checkpoint, '', 'checkpoint %s' % args.checkpoint
    checkpoint = resolve_package_path(DEFAULT_CHECKPOINT)
    if checkpoint is not None:
        return checkpoint, '', 'checkpoint %s' % DEFAULT_CHECKPOINT
    model_config = resolve_package_path(args.model_config)
    if model_config is None:
        raise DemoError('no checkpoint (%s) and no model config (%s) for random weights'
                        % (DEFAULT_CHECKPOINT, args.model_config))
    return '', model_config, 'RANDOM WEIGHTS (%s; no %s)' % (args.model_config,
                                                             DEFAULT_CHECKPOINT)


def child_commands(args, checkpoint, model_config):
    """
    Build the three command lines.

    :return: dict name -> argv for 'camera', 'node', 'monitor'.
    """
    python = [sys.executable, '-m']
    camera = python + ['hand_object_pose_ros.ros.synthetic_camera', '--ros-args']
    camera += ros_param('rate_hz', float(args.rate)) + ros_param('pool_size', args.pool)
    camera += ros_param('seed', args.seed) + ros_param('width', args.width)
    camera += ros_param('height', args.height) + ros_param('publish_depth', not args.no_depth)
    camera += ros_param('qos_reliability', 'best_effort')

    node = python + ['hand_object_pose_ros.ros.node', '--ros-args',
                     '-r', 'image:=' + IMAGE_TOPIC, '-r', 'camera_info:=' + CAMERA_INFO_TOPIC,
                     '-r', 'depth:=' + DEPTH_TOPIC, '-r', 'hand_bbox:=' + HAND_BBOX_TOPIC]
    node += ros_param('checkpoint', checkpoint)
    if model_config:
        node += ros_param('model_config', model_config)
    node += ros_param('mano_model_dir', args.mano_model_dir)
    node += ros_param('device', args.device) + ros_param('use_depth', not args.no_depth)
    node += ros_param('bbox_msg_type', 'roi') + ros_param('qos_reliability', 'best_effort')
    node += ros_param('publish_debug_image', True)
    if args.object_id is not None:
        object_id = args.object_id
        node += ros_param('object_id', object_id if object_id == 'auto' else int(object_id))

    monitor = python + ['hand_object_pose_ros.ros.monitor', '--ros-args']
    monitor += ros_param('duration_s', float(args.duration))
    monitor += ros_param('startup_timeout_s', float(args.startup_timeout))
    monitor += ros_param('output_dir', os.path.abspath(args.output_dir))
    monitor += ros_param('summary_path', os.path.join(os.path.abspath(args.output_dir),
                                                      SUMMARY_FILE_NAME))
    return {'camera': camera, 'node': node, 'monitor': monitor}


def _load_prctl():
    """Return libc's prctl (Linux), or None."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Looked up once here: the function run between fork and exec must not load libraries.
_PRCTL = _load_prctl()


def _die_with_parent():
    """In the child before exec: get SIGTERM if the demo process dies (Linux)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


class ChildProcess:
    """A child process whose output goes to a log file, a tail buffer and (optionally) stdout."""

    def __init__(self, name, argv, env, log_dir, echo):
        """
        Start the process.

        :param name: short name used as the line prefix and log file name.
        :param argv: command line.
        :param env: environment.
        :param log_dir: folder of ``<name>.log``.
        :param echo: print the child's lines as ``[name] line``.
        """
        self.name = name
        self.tail = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.log_path = os.path.join(log_dir, name + '.log')
        self._log = open(self.log_path, 'w')
        self._echo = echo
        # A session of its own: a terminal's Ctrl-C reaches only the demo, which then stops
        # the children in order.
        self.process = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True,
            preexec_fn=_die_with_parent)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            line = line.rstrip('\n')
            self.tail.append(line)
            self._log.write(line + '\n')
            self._log.flush()
            if self._echo:
                print('[%s] %s' % (self.name, line), flush=True)

    def poll(self):
        """Return the exit code, or None while running."""
        return self.process.poll()

    def wait_output(self, timeout_s=2.0):
        """Wait for the output reader to reach the end of the child's output."""
        self._reader.join(timeout_s)

    def tail_text(self):
        """Return the last lines of the child's output."""
        self.wait_output(1.0)
        return '\n'.join(self.tail)

    def signal(self, sig):
        """Send ``sig`` unless the child has exited."""
        if self.process.poll() is None:
            try:
                self.process.send_signal(sig)
            except ProcessLookupError:
                pass

    def close(self):
        """Flush the output of an exited child and close its log."""
        self.wait_output()
        self._log.close()


def stop_processes(children, timeout_s=STOP_TIMEOUT_S):
    """
    Stop children together: SIGINT (rclpy shuts down cleanly), then SIGTERM, then SIGKILL.

    :param children: list of :class:`ChildProcess`.
    :param timeout_s: wait after SIGINT before escalating.
    """
    for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 3.0),
                        (signal.SIGKILL, 3.0)):
        running = [child for child in children if child.poll() is None]
        if not running:
            break
        for child in running:
            child.signal(sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(c.poll() is None for c in running):
            time.sleep(0.05)
    for child in children:
        child.close()


def mano_description(mano_model_dir):
    """Return 'stand-in MANO' or 'MANO from DIR' for the summary."""
    return 'MANO from %s' % mano_model_dir if mano_model_dir else 'stand-in MANO'


def format_summary_line(summary, model_description, mano_text):
    """
    Return the demo's one-line summary.

    :param summary: the monitor's summary dict.
    :param model_description: 'checkpoint ...' or 'RANDOM WEIGHTS ...'.
    :param mano_text: :func:`mano_description`.
    """
    def number(value, fmt):
        return fmt % value if value is not None and math.isfinite(value) else 'n/a'

    latency = summary['latency_ms']
    hand = summary['hand_mje_mm']
    return ('demo: %d frames in, %d processed, %d dropped, latency p50 %s ms p95 %s ms, '
            '%.1f fps, MJE %s mm (root-rel) %s mm (abs), MCE %s mm; %s, %s'
            % (summary['frames_in'], summary['frames_processed'], summary['frames_dropped'],
               number(latency['p50'], '%.0f'), number(latency['p95'], '%.0f'),
               summary['throughput_fps'], number(hand['root_relative'], '%.1f'),
               number(hand['absolute'], '%.1f'), number(summary['object_mce_mm'], '%.1f'),
               mano_text, model_description))


class Demo:
    """Runs the three processes and collects the result (see the module docstring)."""

    def __init__(self, args):
        """:param args: parsed command line (:func:`parse_args`)."""
        self.args = args
        self.children = []
        self.interrupted = False

    def _on_signal(self, signum, frame):
        self.interrupted = True

    def _start(self, name, argv, env, log_dir):
        self.children.append(ChildProcess(name, argv, env, log_dir, not self.args.quiet))

    def stop_children(self):
        """Stop all children (together: each shuts down on its own)."""
        stop_processes(self.children)

    def complete_summary(self, summary_path, checkpoint, model_description):
        """
        Add the model and MANO used and the one-line summary to the monitor's JSON.

        :return: the completed summary dict (also written back to ``summary_path``).
        """
        with open(summary_path) as stream:
            summary = json.load(stream)
        summary['model'] = model_description
        summary['checkpoint'] = checkpoint or None
        summary['random_weights'] = not checkpoint
        summary['standin_mano'] = not self.args.mano_model_dir
        summary['summary_line'] = format_summary_line(
            summary, model_description, mano_description(self.args.mano_model_dir))
        with open(summary_path, 'w') as stream:
            json.dump(summary, stream, indent=2)
        return summary

    def run(self):
        """
        Run the demo to the end.

        :return: the summary dict (the monitor's, plus the model and MANO used).
        :raises DemoError: when a child dies, the node never answers or no frame is processed.
        :raises KeyboardInterrupt: on Ctrl-C / SIGTERM (after stopping the children).
        """
        args = self.args
        checkpoint, model_config, model_description = model_choice(args)
        output_dir = os.path.abspath(args.output_dir)
        log_dir = os.path.join(output_dir, 'logs')
        os.makedirs(log_dir, exist_ok=True)
        summary_path = os.path.join(output_dir, SUMMARY_FILE_NAME)
        if os.path.exists(summary_path):
            os.remove(summary_path)
        env = child_environment()
        commands = child_commands(args, checkpoint, model_config)
        print('demo: %s, %s; camera %s Hz, pool %d; %.0f s measured after the node is up; '
              'output %s; ROS_DOMAIN_ID=%s'
              % (model_description, mano_description(args.mano_model_dir), args.rate, args.pool,
                 args.duration, output_dir, env.get('ROS_DOMAIN_ID', '0')), flush=True)
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for name in ('camera', 'node', 'monitor'):
                self._start(name, commands[name], env, log_dir)
            monitor = self.children[-1]
            deadline = time.monotonic() + args.startup_timeout + args.duration + 60.0
            while monitor.poll() is None:
                if self.interrupted:
                    raise KeyboardInterrupt
                for child in self.children[:-1]:
                    if child.poll() is not None:
                        raise DemoError('the %s process exited with code %d; last output '
                                        '(%s):\n%s' % (child.name, child.poll(),
                                                       child.log_path, child.tail_text()))
                if time.monotonic() > deadline:
                    raise DemoError('the monitor did not finish in time')
                time.sleep(0.2)
            code = monitor.poll()
            if not os.path.exists(summary_path):
                raise DemoError('the monitor exited with code %d and wrote no summary; last '
                                'output:\n%s' % (code, monitor.tail_text()))
            with open(summary_path) as stream:
                status = json.load(stream).get('status')
            if status == 'no_output':
                node = self.children[1]
                raise DemoError('the node produced no output within %.0f s; its last output '
                                '(%s):\n%s' % (args.startup_timeout, node.log_path,
                                               node.tail_text()))
            if code != 0:
                raise DemoError('the monitor exited with code %d; last output:\n%s'
                                % (code, monitor.tail_text()))
            summary = self.complete_summary(summary_path, checkpoint, model_description)
            # Shown now: the children may take seconds to shut down.
            print(summary['summary_line'], flush=True)
        finally:
            if self.children:
                print('demo: stopping the processes', flush=True)
            self.stop_children()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if summary['frames_processed'] <= 0:
            raise DemoError('no frame was processed (%s)' % summary['summary_line'])
        return summary


def main(argv=None):
    """Command-line entry point; returns the exit code."""
    args = parse_args(argv)
    try:
        summary = Demo(args).run()
    except KeyboardInterrupt:
        print('demo: interrupted; processes stopped', file=sys.stderr, flush=True)
        return 130
    except DemoError as error:
        print('demo: FAILED: %s' % error, file=sys.stderr, flush=True)
        return 1
    print('demo: wrote %s (%d overlay PNGs%s)'
          % (os.path.join(os.path.abspath(args.output_dir), SUMMARY_FILE_NAME),
             len(summary['overlays']), ', %s' % summary['animation'] if summary['animation']
             else ''), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
