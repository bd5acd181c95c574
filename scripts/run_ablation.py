#!/usr/bin/env python3
r"""
The paper's Table 4 ablation of the object head, on the synthetic set, at equal budgets.

Rows (``config/train_synthetic.yaml`` plus overrides):

- ``no attention, no y``: ``object_attention=false``, ``object_condition=false``;
- ``y, no attention``: ``object_attention=false``, ``object_condition=true``;
- ``full (attention + y)``: the paper's object branch;
- ``direct regression``: ``object_head=direct``, an MLP from the pooled features to the 9-D
  pose (the baseline the CVAE claims to beat).

Budget: every row starts from the same trained trunk (``--trunk``: backbone, hand head and
classifier of a checkpoint, frozen) and trains only its object head for the same number of
steps, batch size and learning rate; each is then evaluated on the same held-out samples with
ground-truth boxes. Freezing the shared trunk is what makes four equal-budget runs affordable on
a CPU; it isolates the object head, which is what the rows differ in, but it does not measure
how each head would shape the backbone in a joint training (the paper's setting).

Usage::

    bash scripts/ros_env.sh .venv/bin/python scripts/run_ablation.py \\
        --trunk models/demo_lite.pt --steps 600 --parallel 2 --num-samples 500

Writes ``<output-dir>/<row>/`` (runs and evaluations) and ``<output-dir>/ablation.md``.
"""

import argparse
import json
import os
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ROWS = (
    ('no_attention_no_y', 'no attention, no y',
     ['model.object_attention=false', 'model.object_condition=false']),
    ('y_no_attention', 'y, no attention',
     ['model.object_attention=false', 'model.object_condition=true']),
    ('full', 'full (attention + y)',
     ['model.object_attention=true', 'model.object_condition=true']),
    ('direct', 'direct regression (pooled features -> MLP -> 9-D)',
     ['model.object_head=direct']),
)
COLUMNS = (('mce_mm', 'MCE (mm)'), ('add_s_mm', 'ADD(-S) (mm)'), ('adds_mm', 'ADD-S (mm)'),
           ('chamfer_mm2', 'chamfer (mm^2)'), ('pen_mean_mm', 'pen. mean (mm)'))


def parse_args(argv):
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--trunk', required=True,
                        help='checkpoint whose backbone, hand head and classifier are shared')
    parser.add_argument('--config', default='config/train_synthetic.yaml')
    parser.add_argument('--steps', type=int, default=600, help='optimiser steps per row')
    parser.add_argument('--learning-rate', type=float, default=5e-4)
    parser.add_argument('--heldout-root', default='data/synth_heldout_128')
    parser.add_argument('--num-samples', type=int, default=500, help='held-out samples')
    parser.add_argument('--parallel', type=int, default=2,
                        help='rows trained at once (each with one torch thread)')
    parser.add_argument('--rows', nargs='*', default=[name for name, _, _ in ROWS],
                        choices=[name for name, _, _ in ROWS])
    parser.add_argument('--output-dir', default='runs/ablation')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE',
                        help='training-config override for every row (repeatable), e.g. the '
                        "trunk's loss weights: --set loss.pose_reconstruction=150")
    return parser.parse_args(argv)


def train_command(args, name, overrides):
    """Return the training command of one row."""
    settings = ['init_weights=' + args.trunk,
                'init_modules=[backbone, hand_head, classifier]',
                'frozen_modules=[backbone, hand_head, classifier]',
                'max_steps=%d' % args.steps, 'epochs=1000', 'num_threads=1',
                'optim.learning_rate=%g' % args.learning_rate,
                'optim.lr_decay_every_epochs=1000', 'data.num_workers=0',
                'checkpoint_every_minutes=0', 'output_dir=' + os.path.join(args.output_dir, name)]
    command = [sys.executable, '-m', 'hand_object_pose_ros.train', '--config', args.config,
               '--no-progress']
    for setting in settings + list(args.overrides) + overrides:
        command += ['--set', setting]
    return command


def evaluate_command(args, name):
    """Return the evaluation command of one row (ground-truth boxes)."""
    return [sys.executable, '-m', 'hand_object_pose_ros.evaluate', '--checkpoint',
            os.path.join(args.output_dir, name, 'checkpoints', 'last.pt'),
            '--dataset', 'synthetic', '--root', args.heldout_root,
            '--num-samples', str(args.num_samples), '--crop-mode', 'gt',
            '--output-dir', os.path.join(args.output_dir, name, 'eval')]


def run_all(commands, parallel, log_dir):
    """Run (name, command) pairs, ``parallel`` at a time; raise if one fails."""
    pending = list(commands)
    running = []
    while pending or running:
        while pending and len(running) < parallel:
            name, command = pending.pop(0)
            log = open(os.path.join(log_dir, name + '.log'), 'a', encoding='utf-8')
            print('ablation: %s: %s' % (name, ' '.join(command)), flush=True)
            env = dict(os.environ, OMP_NUM_THREADS='1')
            running.append((name, subprocess.Popen(command, stdout=log,
                                                   stderr=subprocess.STDOUT, env=env), log))
        time.sleep(2.0)
        for entry in list(running):
            name, process, log = entry
            if process.poll() is None:
                continue
            log.close()
            running.remove(entry)
            if process.returncode != 0:
                raise RuntimeError('ablation row %s failed (exit %d): see %s'
                                   % (name, process.returncode,
                                      os.path.join(log_dir, name + '.log')))
            print('ablation: %s done' % name, flush=True)


def table(args, started):
    """Return the Markdown table of the rows' held-out results."""
    lines = ['| object head | ' + ' | '.join(title for _, title in COLUMNS) + ' |',
             '|---|' + '---:|' * len(COLUMNS)]
    for name, title, _ in ROWS:
        if name not in args.rows:
            continue
        path = os.path.join(args.output_dir, name, 'eval', 'results.json')
        with open(path, encoding='utf-8') as stream:
            total = json.load(stream)['results']['gt']['total']
        lines.append('| %s | ' % title + ' | '.join('%.1f' % total[key] for key, _ in COLUMNS)
                     + ' |')
    lines += ['', '%d steps of batch 32 per row from the frozen trunk of `%s`; held-out '
              'synthetic, %d samples, ground-truth boxes; %.0f minutes on this machine.'
              % (args.steps, args.trunk, args.num_samples, (time.monotonic() - started) / 60)]
    return '\n'.join(lines) + '\n'


def main(argv=None):
    """Train and evaluate every row, then write the table."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not os.path.isfile(args.trunk):
        print('run_ablation: trunk checkpoint not found: %s' % args.trunk, file=sys.stderr)
        return 2
    os.makedirs(args.output_dir, exist_ok=True)
    started = time.monotonic()
    rows = [(name, overrides) for name, _, overrides in ROWS if name in args.rows]
    run_all([(name, train_command(args, name, overrides)) for name, overrides in rows],
            args.parallel, args.output_dir)
    run_all([(name + '_eval', evaluate_command(args, name)) for name, _ in rows],
            args.parallel, args.output_dir)
    text = table(args, started)
    path = os.path.join(args.output_dir, 'ablation.md')
    with open(path, 'w', encoding='utf-8') as stream:
        stream.write(text)
    print(text + 'wrote %s' % path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
