"""
Export the network's inference graph to ONNX and check it against PyTorch.

``python -m hand_object_pose_ros.export --checkpoint model.pt --out model.onnx`` (or
``--config config/model_lite.yaml`` for random weights) writes the fused inference graph
(:func:`hand_object_pose_ros.modeling.optimize.export_onnx`: BatchNorm folded, decoders left
out, dynamic batch size). Inputs ``images`` (B, 3, S, S) float32 RGB in 0..1 and
``requested_object_index`` (B,) int64 (-1 = the classifier picks); outputs ``mano_pose``,
``mano_betas``, ``vertices``, ``joints`` (metres, wrist origin, camera orientation),
``joints_2d_crop_px``, ``object_rotation``, ``object_translation`` (metres, from the wrist),
``object_index``, ``object_probs``.

When onnxruntime is installed the file is run on random crops and compared with
``model.predict`` (tolerances ``optimize.TOLERANCES``); exit status 1 when it disagrees.
"""

import argparse
import json
import os
import sys

import torch

from hand_object_pose_ros.modeling import optimize
from hand_object_pose_ros.types import NetworkPrediction


def parse_args(argv=None):
    """Parse the command line (see ``--help``)."""
    parser = argparse.ArgumentParser(prog='python -m hand_object_pose_ros.export',
                                     description=__doc__.strip().splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--checkpoint', help='trained checkpoint (.pt)')
    source.add_argument('--config', help='model config YAML (random weights: wiring only)')
    parser.add_argument('--out', required=True, help='ONNX file to write')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE',
                        help='config override with --config, e.g. --set input_size_px=64')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random weights (0)')
    parser.add_argument('--mano-model-dir', default='',
                        help='MANO file or folder (default: the checkpoint / config one)')
    parser.add_argument('--opset', type=int, default=optimize.ONNX_OPSET,
                        help='ONNX opset (%d)' % optimize.ONNX_OPSET)
    parser.add_argument('--check-batch', type=int, default=2,
                        help='random crops compared against PyTorch (2)')
    parser.add_argument('--no-check', action='store_true',
                        help='skip the ONNX Runtime comparison')
    return parser.parse_args(argv)


def load_model(args):
    """
    Build the network the arguments name, on the CPU, in eval mode.

    :return: HandObjectNetwork.
    :raises hand_object_pose_ros.inference.PredictorError: missing / invalid inputs.
    """
    from hand_object_pose_ros.inference import Predictor

    common = {'device': 'cpu', 'mano_model_path': args.mano_model_dir or None,
              'optimize': 'none'}
    if args.checkpoint:
        predictor = Predictor.from_checkpoint(args.checkpoint, **common)
    else:
        predictor = Predictor.from_config(args.config, seed=args.seed,
                                          overrides=tuple(args.overrides), **common)
    return predictor.model


def check_onnx_file(model, path, batch=2, seed=0):
    """
    Run an ONNX file with ONNX Runtime and compare it with ``model.predict``.

    Half the crops get a given object class, half let the classifier pick.

    :param model: the HandObjectNetwork that was exported (CPU, eval).
    :param path: the ONNX file.
    :param batch: number of random crops.
    :param seed: seed of the crops.
    :return: dict of the largest differences (keys of ``optimize.TOLERANCES``).
    :raises ImportError: onnxruntime is not installed.
    """
    import onnxruntime

    size = int(model.cfg.input_size_px)
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
    requested = torch.tensor([index % model.num_objects if index % 2 == 0 else -1
                              for index in range(batch)], dtype=torch.int64)
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    outputs = session.run(list(optimize.OUTPUT_NAMES),
                          {'images': images.numpy(), 'requested_object_index': requested.numpy()})
    candidate = NetworkPrediction(
        **{name: torch.from_numpy(value) for name, value in zip(optimize.OUTPUT_NAMES, outputs)})
    with torch.no_grad():
        # The reference takes one call per kind of row, as the Predictor does.
        given = requested >= 0
        reference = model.predict(images)
        if bool(given.any()):
            with_class = model.predict(images[given], requested[given])
            for name in optimize.OUTPUT_NAMES:
                merged = getattr(reference, name).clone()
                merged[given] = getattr(with_class, name)
                setattr(reference, name, merged)
    return optimize.max_abs_differences(reference, candidate)


def main(argv=None):
    """
    Export (and check); return the exit status (0 ok, 1 failure, 2 bad arguments).

    :param argv: arguments without the program name (default ``sys.argv[1:]``).
    :return: int.
    """
    args = parse_args(argv)
    from hand_object_pose_ros.inference import PredictorError
    try:
        model = load_model(args)
    except PredictorError as error:
        print('export: %s' % error, file=sys.stderr)
        return 2
    folder = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(folder, exist_ok=True)
    try:
        folded = optimize.export_onnx(model, args.out, opset=args.opset)
    except optimize.OptimizeError as error:
        print('export: %s' % error, file=sys.stderr)
        return 1
    print('export: wrote %s (%.1f MB, opset %d, input %d px, %d BatchNorm layers folded)'
          % (args.out, os.path.getsize(args.out) / 1e6, args.opset, model.cfg.input_size_px,
             folded))
    if args.no_check:
        return 0
    try:
        differences = check_onnx_file(model, args.out, batch=args.check_batch)
    except ImportError:
        print('export: onnxruntime is not installed: the ONNX output was NOT checked '
              '(pip install onnxruntime)')
        return 0
    beyond = {name: value for name, value in differences.items()
              if not value <= optimize.TOLERANCES[name]}
    print('export: ONNX Runtime vs PyTorch, largest differences %s; tolerances %s'
          % (json.dumps(differences), json.dumps(optimize.TOLERANCES)))
    if beyond:
        print('export: FAILED: beyond tolerance: %s' % json.dumps(beyond), file=sys.stderr)
        return 1
    print('export: check passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
