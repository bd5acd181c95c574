"""
Synthetic samples written to disk once and read back many times.

Layout of a shard folder::

    DIR/meta.json            format, version, config, shard list and sample counts
    DIR/shard_00000.npz      up to ``shard_size`` samples: stacked ground-truth arrays, the
                             crops as JPEG bytes, crop masks as PNG labels (0 background,
                             1 hand, 2 object) and crop depth as 16-bit PNG (millimetres)

Object vertices are not stored: :class:`ShardDataset` rebuilds them from the catalogue and the
stored pose. A missing folder, ``meta.json`` or shard raises one error naming the path; a
sample that fails to decode is skipped (counted, with a warning) and the next one is served.
"""

from dataclasses import asdict
import json
import logging
import multiprocessing
import os

import cv2
import numpy as np
import torch

from hand_object_pose_ros.data.synthetic import sample_to_item
from hand_object_pose_ros.data.synthetic import SyntheticConfig
from hand_object_pose_ros.data.synthetic import SyntheticHandObjectGenerator
from hand_object_pose_ros.data.synthetic import worker_init_fn
from hand_object_pose_ros.objects import load_object_catalogue
from hand_object_pose_ros.types import HandObjectSample

LOGGER = logging.getLogger(__name__)

SHARD_FORMAT = 'hand_object_pose_ros.synthetic_shards'
SHARD_VERSION = 1
JPEG_QUALITY = 95
ARRAY_FIELDS = ('crop_K', 'camera_K', 'bbox_xyxy_px', 'mano_pose', 'mano_betas', 'joints_cam',
                'vertices_cam', 'joints_2d_crop_px', 'object_rotation', 'object_translation')


class ShardError(RuntimeError):
    """A shard folder or file that cannot be read."""


def encode_sample(sample):
    """
    Encode one sample for a shard.

    :param sample: :class:`HandObjectSample` with masks and depth.
    :return: dict of numpy arrays and encoded bytes (uint8 arrays).
    """
    if sample.mirrored:
        # Shards hold the scene as captured; items are mirrored when read.
        raise ValueError('shards store unmirrored samples (got a mirrored left hand)')
    ok_image, image = cv2.imencode('.jpg', sample.image[..., ::-1],
                                   [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    labels = sample.hand_mask.astype(np.uint8) + 2 * sample.object_mask.astype(np.uint8)
    labels[sample.hand_mask & sample.object_mask] = 1
    ok_labels, labels_png = cv2.imencode('.png', labels)
    depth_mm = np.clip(np.rint(sample.depth * 1000.0), 0, 65535).astype(np.uint16)
    ok_depth, depth_png = cv2.imencode('.png', depth_mm)
    if not (ok_image and ok_labels and ok_depth):
        raise ValueError('could not encode sample')
    encoded = {name: np.asarray(getattr(sample, name), np.float32) for name in ARRAY_FIELDS}
    encoded.update(object_id=np.int32(sample.object_id),
                   is_right_hand=np.bool_(sample.is_right_hand),
                   image_jpeg=image.reshape(-1), labels_png=labels_png.reshape(-1),
                   depth_png=depth_png.reshape(-1))
    return encoded


def _encode_range(args):
    cfg_dict, indices = args
    generator = SyntheticHandObjectGenerator(SyntheticConfig(**cfg_dict))
    return [(index, encode_sample(generator.sample(index))) for index in indices]


def _write_shard(path, encoded_samples, indices):
    arrays = {'index': np.asarray(indices, np.int64)}
    for name in ARRAY_FIELDS + ('object_id', 'is_right_hand'):
        arrays[name] = np.stack([e[name] for e in encoded_samples])
    for name in ('image_jpeg', 'labels_png', 'depth_png'):
        blobs = [e[name] for e in encoded_samples]
        arrays[name] = np.concatenate(blobs)
        arrays[name + '_offsets'] = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    temporary = path + '.tmp.npz'
    np.savez(temporary, **arrays)
    os.replace(temporary, path)


def write_shards(cfg, out_dir, num_samples, workers=2, shard_size=500, progress=True):
    """
    Render samples ``0..num_samples-1`` of ``cfg`` and write them as shards.

    :param cfg: :class:`SyntheticConfig`.
    :param out_dir: folder (created).
    :param num_samples: number of samples.
    :param workers: rendering processes (0: render in this process).
    :param shard_size: samples per shard file.
    :param progress: show a tqdm progress bar.
    :return: path of ``meta.json``.
    """
    os.makedirs(out_dir, exist_ok=True)
    cfg_dict = asdict(cfg)
    chunk = 16
    jobs = [(cfg_dict, list(range(start, min(start + chunk, num_samples))))
            for start in range(0, num_samples, chunk)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=num_samples, unit='sample', desc='synthetic shards')
    shards = []
    pending_samples, pending_indices = [], []

    def flush():
        name = 'shard_%05d.npz' % len(shards)
        _write_shard(os.path.join(out_dir, name), pending_samples, pending_indices)
        shards.append({'file': name, 'count': len(pending_indices)})
        pending_samples.clear()
        pending_indices.clear()

    def consume(results):
        for index, encoded in results:
            pending_samples.append(encoded)
            pending_indices.append(index)
            if len(pending_indices) == shard_size:
                flush()
        if bar is not None:
            bar.update(len(results))

    if workers > 0:
        context = multiprocessing.get_context('fork')
        with context.Pool(workers, initializer=worker_init_fn) as pool:
            for results in pool.imap(_encode_range, jobs):
                consume(results)
    else:
        for job in jobs:
            consume(_encode_range(job))
    if pending_indices:
        flush()
    if bar is not None:
        bar.close()
    meta = {'format': SHARD_FORMAT, 'version': SHARD_VERSION, 'num_samples': num_samples,
            'crop_size_px': cfg.crop_size_px, 'config': cfg_dict, 'shards': shards}
    meta_path = os.path.join(out_dir, 'meta.json')
    with open(meta_path, 'w', encoding='utf-8') as stream:
        json.dump(meta, stream, indent=1)
    return meta_path


class ShardDataset(torch.utils.data.Dataset):
    """Reads shards written by :func:`write_shards`; items as :class:`SyntheticDataset`'s."""

    def __init__(self, shard_dir, augment=None, max_skips=100):
        """
        Open a shard folder (reads ``meta.json`` and checks that every shard exists).

        :param shard_dir: folder written by :func:`write_shards`.
        :param augment: optional callable ``(sample, rng) -> sample`` (training only).
        :param max_skips: consecutive undecodable samples tolerated before raising.
        :raises ShardError: missing folder, missing/invalid ``meta.json`` or missing shard.
        """
        self.shard_dir = shard_dir
        self.augment = augment
        self.max_skips = int(max_skips)
        self.epoch = 0
        self.skipped = 0
        meta_path = os.path.join(shard_dir, 'meta.json')
        if not os.path.isdir(shard_dir):
            raise ShardError('shard folder not found: %s' % shard_dir)
        try:
            with open(meta_path, encoding='utf-8') as stream:
                meta = json.load(stream)
        except FileNotFoundError:
            raise ShardError('not a shard folder (no meta.json): %s' % shard_dir) from None
        except (OSError, ValueError) as error:
            raise ShardError('unreadable %s: %s' % (meta_path, error)) from error
        if meta.get('format') != SHARD_FORMAT:
            raise ShardError('%s is not a synthetic shard index (format %r)'
                             % (meta_path, meta.get('format')))
        self.meta = meta
        self._files, counts = [], []
        for shard in meta['shards']:
            path = os.path.join(shard_dir, shard['file'])
            if not os.path.isfile(path):
                raise ShardError('missing shard file: %s' % path)
            self._files.append(path)
            counts.append(int(shard['count']))
        self._starts = np.cumsum([0] + counts)
        self._cache_path = None
        self._cache = None

    def __len__(self):
        """Return the number of samples."""
        return int(self._starts[-1])

    def _shard(self, path):
        if path != self._cache_path:
            try:
                with np.load(path, allow_pickle=False) as data:
                    self._cache = {name: data[name] for name in data.files}
            except Exception as error:  # noqa: B902 - zip, npz and IO errors alike.
                raise ShardError('corrupt shard file %s: %s' % (path, error)) from error
            self._cache_path = path
        return self._cache

    def sample(self, index):
        """
        Decode sample ``index``.

        :return: :class:`HandObjectSample`.
        :raises ShardError: corrupt shard file.
        :raises ValueError: the sample cannot be decoded.
        """
        if not 0 <= index < len(self):
            raise IndexError('sample %d out of range 0..%d' % (index, len(self) - 1))
        shard_index = int(np.searchsorted(self._starts, index, side='right') - 1)
        data = self._shard(self._files[shard_index])
        row = index - int(self._starts[shard_index])

        def blob(name):
            offsets = data[name + '_offsets']
            return data[name][offsets[row]:offsets[row + 1]]

        image = cv2.imdecode(blob('image_jpeg'), cv2.IMREAD_COLOR)
        labels = cv2.imdecode(blob('labels_png'), cv2.IMREAD_UNCHANGED)
        depth_mm = cv2.imdecode(blob('depth_png'), cv2.IMREAD_UNCHANGED)
        if image is None or labels is None or depth_mm is None:
            raise ValueError('undecodable image data')
        values = {name: np.asarray(data[name][row], np.float32) for name in ARRAY_FIELDS}
        if not all(np.all(np.isfinite(v)) for v in values.values()):
            raise ValueError('non-finite ground truth')
        object_id = int(data['object_id'][row])
        model = load_object_catalogue().get(object_id)
        object_vertices = (model.vertices @ values['object_rotation'].T
                           + values['object_translation']).astype(np.float32)
        return HandObjectSample(
            image=np.ascontiguousarray(image[..., ::-1]), object_id=object_id,
            object_vertices_cam=object_vertices,
            is_right_hand=bool(data['is_right_hand'][row]),
            hand_mask=labels == 1, object_mask=labels == 2,
            depth=depth_mm.astype(np.float32) / 1000.0, **values)

    def __getitem__(self, index):
        """Return the tensor dict of sample ``index``; undecodable samples are skipped."""
        for attempt in range(self.max_skips + 1):
            current = (index + attempt) % len(self)
            try:
                sample = self.sample(current)
            except (ValueError, KeyError, IndexError) as error:
                self.skipped += 1
                LOGGER.warning('skipping undecodable sample %d of %s (%s); %d skipped so far',
                               current, self.shard_dir, error, self.skipped)
                continue
            if self.augment is not None:
                rng = np.random.default_rng([int(current), int(self.epoch), 11])
                sample = self.augment(sample, rng)
            return sample_to_item(sample, current)
        raise ShardError('%d consecutive undecodable samples from %d in %s'
                         % (self.max_skips + 1, index, self.shard_dir))
