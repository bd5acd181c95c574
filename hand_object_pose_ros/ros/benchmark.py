"""
The speed benchmark suite: ``hand_object_pose_benchmark suite`` (see docs/benchmark.md).

Importing this module needs no ROS; the end-to-end part imports rclpy (through the demo).

For each model config, device and batch size (hands per frame) it measures, in one process
and interleaved so that a varying machine load hits every path alike:

- model-only latency (median, p95) of every network path: ``naive`` (the eager full forward
  ``model(images, object_index, target_pose9d)`` in eval mode, computing all branches: what
  a training-code port runs), ``none`` (``model.predict``, the reference inference path) and
  the fast paths of :mod:`hand_object_pose_ros.modeling.optimize`;
- ``Predictor.predict_batch`` latency including crop and lift (reference and fast path);
- marker building (``markers.marker_build_time_ms``) and debug-overlay drawing time;
- memory: process RSS after the config ran and its peak, CUDA peak allocation.

Then, unless ``--no-e2e``, end to end over DDS with the demo's processes (synthetic camera at
``--e2e-rate`` Hz -> node -> monitor, three processes): sustained throughput, dropped frames,
latency image stamp -> ``object_pose`` received, and the node's RSS sampled every second.

It prints one table and writes every figure to a JSON file.
"""

import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time

import numpy as np
import psutil
import torch

DEFAULT_CONFIGS = ('config/model_lite.yaml', 'config/model_paper.yaml')
MODEL_PATHS = ('naive', 'none', 'fused', 'onnxruntime', 'compile')
DEFAULT_MODEL_PATHS = ('naive', 'none', 'fused', 'onnxruntime')
IMAGE_SHAPE = (480, 640)
RSS_SAMPLE_PERIOD_S = 1.0


def add_arguments(parser):
    """
    Add the suite's options to an argparse parser.

    :param parser: argparse.ArgumentParser (or subparser).
    """
    parser.add_argument('--configs', nargs='+', default=list(DEFAULT_CONFIGS),
                        help='model config YAML files (random weights, stand-in MANO)')
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 4],
                        help='hands per frame (1 4)')
    parser.add_argument('--threads', type=int, default=2, help='torch / ONNX Runtime threads')
    parser.add_argument('--devices', nargs='+', default=None,
                        help='cpu and/or cuda (default: cpu, and cuda when available)')
    parser.add_argument('--paths', nargs='+', default=list(DEFAULT_MODEL_PATHS),
                        choices=MODEL_PATHS,
                        help='network paths timed side by side (compile: minutes to start)')
    parser.add_argument('--runs', type=int, default=20, help='timed calls of each path (20)')
    parser.add_argument('--warmup', type=int, default=3, help='untimed calls first (3)')
    parser.add_argument('--no-e2e', action='store_true', help='skip the end-to-end part')
    parser.add_argument('--e2e-configs', nargs='+', default=None,
                        help='configs run end to end (default: --configs)')
    parser.add_argument('--e2e-modes', nargs='+', default=['none', 'auto'],
                        help="node 'optimize' values run end to end (none auto)")
    parser.add_argument('--e2e-duration', type=float, default=60.0,
                        help='seconds measured per end-to-end run (60; 300 for the RSS target)')
    parser.add_argument('--e2e-rate', type=float, default=30.0, help='camera rate, Hz (30)')
    parser.add_argument('--e2e-pool', type=int, default=30,
                        help='frames the synthetic camera renders and loops (30)')
    parser.add_argument('--e2e-debug-image', action='store_true',
                        help='let the node draw and publish debug_image (off: its default in '
                             'node.yaml is on, but it is a visualisation aid)')
    parser.add_argument('--e2e-startup-timeout', type=float, default=300.0,
                        help="seconds to wait for the node's first output (300)")
    parser.add_argument('--json', default='benchmark_output/benchmark.json',
                        help='JSON file written (benchmark_output/benchmark.json)')


def _percentile(samples, fraction):
    """Return the ``fraction`` quantile (nearest rank) of a list of numbers."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def time_interleaved(functions, runs, warmup, synchronize=None):
    """
    Time callables in alternating order (forward, then backward) so that load hits them alike.

    :param functions: dict name -> callable without arguments.
    :param runs: timed calls of each.
    :param warmup: untimed calls of each first.
    :param synchronize: callable run after each call before stopping the clock (CUDA), or None.
    :return: dict name -> {'median_ms', 'p95_ms', 'runs'}.
    """
    names = list(functions)
    for _ in range(warmup):
        for name in names:
            functions[name]()
    durations = {name: [] for name in names}
    for run in range(runs):
        for name in (names if run % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            functions[name]()
            if synchronize is not None:
                synchronize()
            durations[name].append(1e3 * (time.perf_counter() - start))
    return {name: {'median_ms': statistics.median(values), 'p95_ms': _percentile(values, 0.95),
                   'runs': len(values)} for name, values in durations.items()}


def _synthetic_frame(batch, seed=0):
    """Return (rgb (480, 640, 3) uint8, K (3, 3), boxes (batch, 4)): hands side by side."""
    rng = np.random.default_rng(seed)
    height, width = IMAGE_SHAPE
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    K = np.array([[615.0, 0.0, width / 2.0], [0.0, 615.0, height / 2.0], [0.0, 0.0, 1.0]])
    side = 120.0
    boxes = np.array([[40.0 + 145.0 * index, 150.0, 40.0 + 145.0 * index + side, 150.0 + side]
                      for index in range(batch)])
    return rgb, K, boxes


def _rss_mb():
    """Return this process's resident set size, MB."""
    return psutil.Process().memory_info().rss / 1e6


def _peak_rss_mb():
    """Return this process's peak resident set size so far, MB (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def benchmark_config(config, device, batches, paths, runs, warmup):
    """
    Time the network paths, the Predictor, markers and the overlay for one config and device.

    :param config: model config YAML path.
    :param device: 'cpu' or 'cuda'.
    :param batches: hands per frame to time.
    :param paths: network paths (see :data:`MODEL_PATHS`).
    :param runs: timed calls of each.
    :param warmup: untimed calls first.
    :return: list of row dicts (one per batch size).
    """
    from hand_object_pose_ros.inference import Predictor
    from hand_object_pose_ros.modeling import optimize
    from hand_object_pose_ros.objects import load_object_catalogue
    from hand_object_pose_ros.ros.markers import marker_build_time_ms
    from hand_object_pose_ros.visualization import draw_overlay

    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    reference = Predictor.from_config(config, device=device, optimize='none')
    model = reference.model
    preparation_s = {}
    runners = {}
    for path in paths:
        if path in ('naive', 'none'):
            continue
        start = time.perf_counter()
        runners[path] = optimize.prepare_inference(model, path)
        preparation_s[path] = time.perf_counter() - start
    start = time.perf_counter()
    fast = Predictor(model, device=device, optimize='auto')
    preparation_s['auto'] = time.perf_counter() - start
    synchronize = torch.cuda.synchronize if device == 'cuda' else None
    catalogue = load_object_catalogue()
    size = model.cfg.input_size_px
    rows = []
    for batch in batches:
        images = torch.rand(batch, 3, size, size,
                            generator=torch.Generator().manual_seed(batch)).to(device)
        object_index = torch.arange(batch, device=device) % model.num_objects
        target = torch.zeros(batch, 9, device=device)
        target[:, 2] = 0.1
        target[:, 3] = 1.0
        target[:, 7] = 1.0

        def naive():
            with torch.no_grad():
                model(images, object_index, target)

        calls = {}
        if 'naive' in paths:
            calls['naive'] = naive
        if 'none' in paths:
            calls['none'] = lambda: model.predict(images, object_index)
        for name, runner in runners.items():
            calls[name] = lambda runner=runner: runner.predict(images, object_index)
        # The Predictor calls join the same interleaved loop: crop + lift time is then the
        # difference of two medians taken under the same load.
        rgb, K, boxes = _synthetic_frame(batch)
        calls['predictor:none'] = lambda: reference.predict_batch(rgb, boxes, K, object_ids=1)
        calls['predictor:auto'] = lambda: fast.predict_batch(rgb, boxes, K, object_ids=1)
        model_times = time_interleaved(calls, runs, warmup, synchronize)
        predictor_times = {name.split(':')[1]: model_times.pop(name)
                           for name in ('predictor:none', 'predictor:auto')}
        predictions = fast.predict_batch(rgb, boxes, K, object_ids=1)
        markers = marker_build_time_ms(num_hands=batch, repeats=max(5, runs // 2),
                                       faces=fast.faces, catalogue=catalogue,
                                       object_id=1, verbose=False)
        overlay = time_interleaved(
            {'overlay': lambda: draw_overlay(rgb, predictions, K, fast.faces, catalogue)},
            max(3, runs // 2), 1)['overlay']
        row = {
            'config': os.path.basename(config), 'device': device, 'batch': batch,
            'input_px': size, 'threads': torch.get_num_threads(),
            'model': model_times, 'auto_mode': fast.optimize_mode,
            'predictor': predictor_times,
            'crop_lift_ms': {
                'none': predictor_times['none']['median_ms'] - model_times.get(
                    'none', {}).get('median_ms', float('nan')),
                'auto': predictor_times['auto']['median_ms'] - model_times.get(
                    fast.optimize_mode, {}).get('median_ms', float('nan'))},
            'markers_ms': markers, 'overlay_ms': overlay['median_ms'],
            'preparation_s': preparation_s,
            'rss_mb': _rss_mb(), 'peak_rss_mb': _peak_rss_mb(),
        }
        if device == 'cuda':
            row['cuda_peak_mb'] = torch.cuda.max_memory_allocated() / 1e6
        rows.append(row)
    return rows


def run_end_to_end(config, mode, args, output_dir):
    """
    Camera -> node -> monitor over DDS (the demo's processes), node RSS sampled each second.

    :param config: model config YAML (random weights).
    :param mode: the node's ``optimize`` parameter.
    :param args: the suite's parsed arguments.
    :param output_dir: folder for the run's logs and summary.
    :return: dict (the monitor's summary plus the node RSS figures), or {'error': text}.
    """
    # Imported here: the options and the model part of the suite need no ROS.
    from hand_object_pose_ros.ros import demo

    demo_args = demo.parse_args([
        '--duration', str(args.e2e_duration), '--pool', str(args.e2e_pool),
        '--rate', str(args.e2e_rate), '--model-config', os.path.abspath(config),
        '--device', 'cpu' if args.e2e_device == 'cpu' else 'cuda',
        '--output-dir', output_dir, '--startup-timeout', str(args.e2e_startup_timeout),
        '--quiet'])
    commands = demo.child_commands(demo_args, '', os.path.abspath(config))
    commands['node'] += demo.ros_param('optimize', mode)
    commands['node'] += demo.ros_param('publish_debug_image', bool(args.e2e_debug_image))
    env = demo.child_environment()
    # torch reads the thread count at start-up; ONNX Runtime follows torch's.
    env['OMP_NUM_THREADS'] = str(args.threads)
    log_dir = os.path.join(output_dir, 'logs')
    os.makedirs(log_dir, exist_ok=True)
    summary_path = os.path.join(output_dir, demo.SUMMARY_FILE_NAME)
    if os.path.exists(summary_path):
        os.remove(summary_path)
    children = []
    samples = []
    try:
        for name in ('camera', 'node', 'monitor'):
            children.append(demo.ChildProcess(name, commands[name], env, log_dir, False))
        node_process = psutil.Process(children[1].process.pid)
        deadline = time.monotonic() + args.e2e_startup_timeout + args.e2e_duration + 60.0
        while children[2].poll() is None:
            for child in children[:2]:
                if child.poll() is not None:
                    return {'error': 'the %s exited with %s: %s'
                            % (child.name, child.poll(), child.tail_text()[-2000:])}
            if time.monotonic() > deadline:
                return {'error': 'the monitor did not finish in time'}
            try:
                samples.append((time.monotonic(), node_process.memory_info().rss / 1e6))
            except psutil.Error:
                pass
            time.sleep(RSS_SAMPLE_PERIOD_S)
        end = time.monotonic()
        if not os.path.exists(summary_path):
            return {'error': 'no summary: %s' % children[2].tail_text()[-2000:]}
        with open(summary_path) as stream:
            summary = json.load(stream)
    finally:
        demo.stop_processes(children)
    # The monitor's window: the last duration_s seconds before it ended (plus its wrap-up).
    window = [rss for stamp, rss in samples if stamp >= end - args.e2e_duration - 2.0]
    if len(window) >= 5:
        head = window[:max(1, len(window) // 5)]
        tail = window[-max(1, len(window) // 5):]
        summary['node_rss_mb'] = {'start': statistics.median(head),
                                  'end': statistics.median(tail), 'max': max(window),
                                  'growth_percent': 100.0 * (statistics.median(tail)
                                                             / statistics.median(head) - 1.0),
                                  'samples': len(window)}
    summary['optimize'] = mode
    summary['config'] = os.path.basename(config)
    summary['node_log'] = os.path.join(log_dir, 'node.log')
    return summary


def _format_ms(value):
    """Format milliseconds (or '-' for None / NaN)."""
    return '-' if value is None or value != value else '%.1f' % value


def print_table(rows, e2e_results):
    """
    Print the one table: a row per config, device, batch and network path.

    :param rows: rows of :func:`benchmark_config`.
    :param e2e_results: list of end-to-end result dicts.
    """
    header = ('%-17s %-4s %2s %-11s %8s %8s %6s %6s %9s %7s %7s %6s %6s %6s %7s %6s'
              % ('config', 'dev', 'B', 'path', 'p50 ms', 'p95 ms', 'x nv', 'x ref',
                 'pred ms', 'mrk ms', 'ovl ms', 'e2e Hz', 'lat ms', 'drop%', 'RSS MB', 'RSS+%'))
    print(header)
    print('-' * len(header))
    for row in rows:
        model = row['model']
        naive = model.get('naive', {}).get('median_ms')
        reference = model.get('none', {}).get('median_ms')
        for path, times in model.items():
            predictor_key = 'none' if path == 'none' else (
                'auto' if path == row['auto_mode'] else None)
            predictor_ms = row['predictor'][predictor_key]['median_ms'] \
                if predictor_key else None
            e2e = None
            if row['batch'] == 1 and predictor_key:
                e2e = next((result for result in e2e_results
                            if result.get('config') == row['config']
                            and result.get('device') == row['device']
                            and result.get('resolved_mode') == path), None)
            extra = ('%6s %6s %6s %7s %6s' % ('-', '-', '-', '-', '-'))
            if e2e and 'error' not in e2e:
                rss = e2e.get('node_rss_mb', {})
                latency = (e2e.get('latency_ms') or {}).get('p50')
                drop = 100.0 * e2e['frames_dropped'] / max(1, e2e['frames_in'])
                extra = '%6.1f %6s %6.1f %7s %6s' % (
                    e2e['throughput_fps'], _format_ms(latency), drop,
                    '%.0f' % rss['max'] if rss else '-',
                    '%.1f' % rss['growth_percent'] if rss else '-')
            label = path + ('*' if path == row['auto_mode'] else '')
            print('%-17s %-4s %2d %-11s %8s %8s %6s %6s %9s %7s %7s %s'
                  % (row['config'][:17], row['device'], row['batch'], label,
                     _format_ms(times['median_ms']), _format_ms(times['p95_ms']),
                     '%.2f' % (naive / times['median_ms']) if naive else '-',
                     '%.2f' % (reference / times['median_ms']) if reference else '-',
                     _format_ms(predictor_ms),
                     _format_ms(row['markers_ms']['build_serialized'])
                     if predictor_key else '-',
                     _format_ms(row['overlay_ms']) if predictor_key else '-', extra))
    print('* = the path Predictor/node optimize=auto picked. x nv / x ref: speed-up over the '
          'naive full forward / over model.predict (same run, interleaved). pred ms: '
          'Predictor.predict_batch (crop + network + lift). mrk: markers build_serialized; '
          'ovl: debug overlay. e2e (batch 1): node throughput at the camera rate, latency '
          'image stamp -> object_pose received, dropped frames, node RSS max and growth.')


def _resolved_mode(node_log_path, mode):
    """Read the optimize mode the node reported ('configured: ... (optimize X)')."""
    try:
        with open(node_log_path) as stream:
            for line in stream:
                if '(optimize ' in line:
                    return line.split('(optimize ', 1)[1].split(')', 1)[0]
    except OSError:
        pass
    return mode


def run(args):
    """Model, Predictor, markers, memory and end-to-end figures; one table and a JSON file."""
    torch.set_num_threads(args.threads)
    devices = args.devices or (['cpu', 'cuda'] if torch.cuda.is_available() else ['cpu'])
    if 'cuda' in devices and not torch.cuda.is_available():
        print('suite: CUDA is not available here: skipping the cuda rows', file=sys.stderr)
        devices = [device for device in devices if device != 'cuda']
    print('suite: %s, %d CPU cores, torch %s, %d threads, devices %s, configs %s, batches %s, '
          '%d runs after %d warm-up; random weights, stand-in MANO'
          % (platform.processor() or platform.machine(), os.cpu_count(), torch.__version__,
             torch.get_num_threads(), devices, args.configs, args.batches, args.runs,
             args.warmup), flush=True)
    rows = []
    for device in devices:
        for config in args.configs:
            print('suite: timing %s on %s ...' % (config, device), flush=True)
            rows += benchmark_config(config, device, args.batches, args.paths, args.runs,
                                     args.warmup)
    e2e_results = []
    if not args.no_e2e:
        output_root = tempfile.mkdtemp(prefix='hand_object_pose_e2e_')
        for device in devices:
            args.e2e_device = device
            for config in (args.e2e_configs or args.configs):
                for mode in args.e2e_modes:
                    print('suite: end to end %s optimize=%s on %s, %.0f s at %.0f Hz ...'
                          % (config, mode, device, args.e2e_duration, args.e2e_rate),
                          flush=True)
                    output_dir = os.path.join(output_root, '%s_%s_%s' % (
                        os.path.splitext(os.path.basename(config))[0], mode, device))
                    result = run_end_to_end(config, mode, args, output_dir)
                    result.update({'config': os.path.basename(config), 'device': device,
                                   'optimize': mode})
                    result['resolved_mode'] = _resolved_mode(
                        os.path.join(output_dir, 'logs', 'node.log'), mode)
                    if 'error' in result:
                        print('suite: end to end FAILED: %s' % result['error'], flush=True)
                    e2e_results.append(result)
    _add_overheads(rows, e2e_results)
    print()
    print_table(rows, e2e_results)
    report = {'host': {'processor': platform.processor(), 'cpu_count': os.cpu_count(),
                       'load_average': os.getloadavg(), 'torch': torch.__version__,
                       'threads': args.threads,
                       'cuda': torch.cuda.get_device_name() if torch.cuda.is_available()
                       else None},
              'arguments': {key: value for key, value in vars(args).items()
                            if key != 'run' and not callable(value)},
              'rows': rows, 'end_to_end': e2e_results}
    folder = os.path.dirname(os.path.abspath(args.json))
    os.makedirs(folder, exist_ok=True)
    with open(args.json, 'w') as stream:
        json.dump(report, stream, indent=2, default=str)
    for result in e2e_results:
        if 'overhead' in result:
            overhead = result['overhead']
            print('e2e %s optimize=%s (%s): %.1f fps, node frame time %.1f ms (%s), model-only '
                  '%.1f ms -> node overhead %.1f ms (%.0f%% of the frame time); latency p50 - '
                  'model-only = %s ms'
                  % (result['config'], result['optimize'], result['resolved_mode'],
                     result['throughput_fps'], overhead['frame_time_ms'],
                     'its own time per frame, camera-bound' if overhead['camera_bound']
                     else '1 / throughput', overhead['model_ms'], overhead['overhead_ms'],
                     overhead['fraction_percent'],
                     _format_ms(overhead['latency_overhead_ms'])))
    print('suite: wrote %s' % args.json)
    return 0 if all('error' not in result for result in e2e_results) else 1


def _add_overheads(rows, e2e_results):
    """
    Add the node overhead per frame to each end-to-end result (key ``overhead``).

    Node frame time: 1 / throughput when the node cannot keep up with the camera (it is busy
    all the time), else the node's own mean time per processed frame (``processing_ms_mean``
    on /diagnostics: image conversion, crop, network, lift and publishing; it idles between
    camera frames). Overhead = node frame time minus the model-only median of the same path at
    batch 1 (measured in this process). ``latency_overhead_ms`` = median latency (image stamp
    -> object_pose received in another process) minus model-only: it adds DDS transport both
    ways and the wait for the inference thread.
    """
    for result in e2e_results:
        if 'error' in result or not result.get('throughput_fps'):
            continue
        row = next((r for r in rows if r['config'] == result['config']
                    and r['device'] == result['device'] and r['batch'] == 1), None)
        mode = result['resolved_mode']
        if row is None or mode not in row['model']:
            continue
        camera_bound = result['throughput_fps'] >= 0.95 * result.get('input_rate_hz', 0.0)
        processing_ms = (result.get('node') or {}).get('processing_ms_mean')
        if camera_bound and isinstance(processing_ms, float) and processing_ms > 0:
            frame_time_ms = processing_ms
        else:
            frame_time_ms = 1e3 / result['throughput_fps']
        model_ms = row['model'][mode]['median_ms']
        latency_ms = (result.get('latency_ms') or {}).get('p50')
        result['overhead'] = {'frame_time_ms': frame_time_ms, 'model_ms': model_ms,
                              'overhead_ms': frame_time_ms - model_ms,
                              'fraction_percent': 100.0 * (frame_time_ms - model_ms)
                              / frame_time_ms,
                              'node_processing_ms': processing_ms,
                              'latency_overhead_ms': None if latency_ms is None
                              else latency_ms - model_ms,
                              'camera_bound': camera_bound}
