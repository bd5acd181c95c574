"""
Speed benchmarks, one subcommand each: ``python -m hand_object_pose_ros.benchmark mano``.

Subcommands register themselves in ``SUBCOMMANDS`` as ``name: (add_arguments, run)``;
``run(args)`` prints its figures and returns an exit status.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

from hand_object_pose_ros import mano


def time_calls(functions, runs, warmup):
    """
    Return the median wall time in seconds of each call, timed interleaved.

    The calls alternate (in turn-swapping order) so that a varying machine load affects
    them alike, which makes their ratio meaningful on a shared machine.

    :param functions: list of callables without arguments.
    :param runs: number of timed calls of each.
    :param warmup: untimed calls of each first.
    :return: list of median durations, seconds, in the order of ``functions``.
    """
    for _ in range(warmup):
        for function in functions:
            function()
    durations = [[] for _ in functions]
    for run in range(runs):
        order = range(len(functions)) if run % 2 == 0 else reversed(range(len(functions)))
        for index in order:
            start = time.perf_counter()
            functions[index]()
            durations[index].append(time.perf_counter() - start)
    return [statistics.median(times) for times in durations]


def _add_mano_arguments(parser):
    parser.add_argument('--runs', type=int, default=200, help='timed forward passes per size')
    parser.add_argument('--warmup', type=int, default=20, help='untimed passes first')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--model-path', default=None,
                        help='MANO_RIGHT.pkl (or its folder); default: the stand-in written '
                             'to a temporary folder')
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 128])
    parser.add_argument('--no-smplx', action='store_true', help='time our layer only')


def _run_mano(args):
    """Time our ManoLayer and smplx.MANO on the same model file (CPU, float32, no grad)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        import smplx
    except ImportError:
        smplx = None
    if args.no_smplx:
        smplx = None
    with tempfile.TemporaryDirectory() as folder:
        if args.model_path is None:
            model_path = os.path.join(folder, 'MANO_RIGHT.pkl')
            mano.write_standin_pickle(model_path, side='right')
            label = 'stand-in (written to a temporary MANO_RIGHT.pkl)'
        else:
            model_path = args.model_path
            label = model_path
        ours = mano.ManoLayer.from_file(model_path, side='right')
        reference = None
        if smplx is not None:
            reference = smplx.MANO(model_path, is_rhand=True, use_pca=False,
                                   flat_hand_mean=False)
        print('MANO forward on CPU, float32, no grad, %d threads, median of %d runs after %d '
              'warm-up, the two layers interleaved; model: %s'
              % (torch.get_num_threads(), args.runs, args.warmup, label))
        header = '%6s  %14s  %14s  %12s' % ('batch', 'ours ms', 'smplx ms', 'smplx / ours')
        print(header)
        print('-' * len(header))
        generator = torch.Generator().manual_seed(0)
        for batch in args.batch_sizes:
            global_orient = torch.randn(batch, 3, generator=generator)
            hand_pose = 0.5 * torch.randn(batch, 45, generator=generator)
            betas = torch.randn(batch, 10, generator=generator)
            transl = 0.1 * torch.randn(batch, 3, generator=generator)
            calls = [lambda: ours(global_orient, hand_pose, betas, transl)]
            if reference is not None:
                calls.append(lambda: reference(betas=betas, global_orient=global_orient,
                                               hand_pose=hand_pose, transl=transl))
            with torch.no_grad():
                medians = time_calls(calls, args.runs, args.warmup)
            smplx_text, ratio_text = 'n/a', 'n/a'
            if reference is not None:
                smplx_text = '%.3f' % (1e3 * medians[1])
                ratio_text = '%.2f' % (medians[1] / medians[0])
            ours_time = medians
            print('%6d  %14s  %14s  %12s' % (batch, '%.3f' % (1e3 * ours_time[0]), smplx_text,
                                             ratio_text))
    return 0


SUBCOMMANDS = {
    'mano': (_add_mano_arguments, _run_mano),
}


def _add_model_arguments(parser):
    parser.add_argument('--configs', nargs='+',
                        default=['config/model_paper.yaml', 'config/model_lite.yaml'],
                        help='model config YAML files')
    parser.add_argument('--runs', type=int, default=20, help='timed predict calls per config')
    parser.add_argument('--warmup', type=int, default=3, help='untimed calls first')
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    parser.add_argument('--batch-size', type=int, default=1)


def _run_model(args):
    """Parameter counts and CPU time of model.predict (random weights, stand-in MANO)."""
    from hand_object_pose_ros.config import load_model_config
    from hand_object_pose_ros.modeling import build_model

    torch.set_num_threads(args.threads)
    print('model.predict on CPU, float32, batch %d, %d threads, median of %d runs after %d '
          'warm-up' % (args.batch_size, torch.get_num_threads(), args.runs, args.warmup))
    columns = ('config', 'input', 'params', 'inference params', 'predict ms')
    header = '%-28s %6s %12s %16s %12s' % columns
    print(header)
    print('-' * len(header))
    for path in args.configs:
        torch.manual_seed(0)
        model = build_model(load_model_config(path)).eval()
        total = sum(parameter.numel() for parameter in model.parameters())
        training_modules = [getattr(model.object_head, name, None)
                            for name in ('image_decoder', 'pose_encoder')]
        training_only = sum(parameter.numel() for module in training_modules
                            if module is not None for parameter in module.parameters())
        size = model.cfg.input_size_px
        images = torch.rand(args.batch_size, 3, size, size,
                            generator=torch.Generator().manual_seed(0))
        (median,) = time_calls([lambda: model.predict(images)], args.runs, args.warmup)
        print('%-28s %6d %12d %16d %12.1f' % (os.path.basename(path), size, total,
                                              total - training_only, 1e3 * median))
    return 0


SUBCOMMANDS['model'] = (_add_model_arguments, _run_model)


def _add_suite_arguments(parser):
    from hand_object_pose_ros.ros import benchmark as suite  # rclpy: imported only when used
    suite.add_arguments(parser)


def _run_suite(args):
    """Model paths, Predictor, markers, memory, end to end over DDS (docs/benchmark.md)."""
    from hand_object_pose_ros.ros import benchmark as suite
    return suite.run(args)


SUBCOMMANDS['suite'] = (_add_suite_arguments, _run_suite)


def build_parser():
    """
    Return the argument parser with one subparser per entry of ``SUBCOMMANDS``.

    :return: argparse.ArgumentParser.
    """
    parser = argparse.ArgumentParser(prog='python -m hand_object_pose_ros.benchmark',
                                     description=__doc__.strip().splitlines()[0])
    subparsers = parser.add_subparsers(dest='command', required=True)
    for name, (add_arguments, run) in SUBCOMMANDS.items():
        subparser = subparsers.add_parser(name, help=(run.__doc__ or '').strip())
        add_arguments(subparser)
        subparser.set_defaults(run=run)
    return parser


def main(argv=None):
    """
    Run one benchmark subcommand.

    :param argv: arguments without the program name (default: ``sys.argv[1:]``).
    :return: exit status.
    """
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == '__main__':
    sys.exit(main())
