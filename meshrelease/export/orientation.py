"""Voxel-order changes between the array a model was trained on and the one a runtime feeds it.

arc-meshchop trains on RAS-canonical arrays; BrainChop feeds the FreeSurfer-conformed LIA array
(nibabel (i, j, k) order with ``enableTranspose: true``). A MeshNet's kernels and dilations are the
same on every axis and "same" padding is symmetric, so permuting/flipping the spatial axes of every
kernel re-orients the whole network exactly: ``reorient(f(x)) == f'(reorient(x))``.
"""

from __future__ import annotations

import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, ornt_transform

from ..errors import ExportError

_AXES = ({"L", "R"}, {"A", "P"}, {"S", "I"})


def check_axcodes(codes: str) -> str:
    """Return ``codes`` upper-cased if it names each anatomical axis once (e.g. ``RAS``, ``LIA``)."""
    up = str(codes).upper()
    if len(up) != 3 or any(sum(c in axis for c in up) != 1 for axis in _AXES):
        raise ExportError(f"orientation {codes!r} is not a 3-letter axis code like RAS or LIA")
    return up


def _transform(source: str, target: str) -> np.ndarray:
    return ornt_transform(axcodes2ornt(tuple(check_axcodes(source))), axcodes2ornt(tuple(check_axcodes(target))))


def reorient_volume(volume: np.ndarray, source: str, target: str) -> np.ndarray:
    """Re-order the first three axes of ``volume`` from voxel order ``source`` to ``target`` (exact, no resampling)."""
    return np.ascontiguousarray(apply_orientation(volume, _transform(source, target)))


def reorient_kernel(weight: np.ndarray, source: str, target: str) -> np.ndarray:
    """Re-orient a PyTorch-layout kernel ``[out, in, kD, kH, kW]`` from ``source`` to ``target`` voxel order.

    The kernel's spatial axes are treated as a small volume and re-ordered exactly like the input.
    """
    spatial_first = np.moveaxis(weight, (2, 3, 4), (0, 1, 2))
    moved = apply_orientation(spatial_first, _transform(source, target))
    return np.ascontiguousarray(np.moveaxis(moved, (0, 1, 2), (2, 3, 4)))
