"""Real-MRI inputs for parity checks, preprocessed exactly as arc-meshchop trained.

Training preprocessing: nibabel load -> ``as_closest_canonical`` (RAS) -> 256^3 at 1 mm ->
min-max to [0, 1]. Parity runs on a centre crop of that volume.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SampleError

CONFORMED_SHAPE = (256, 256, 256)


def load_sample(path: str | Path) -> np.ndarray:
    """Load a NIfTI volume and return the conformed RAS 256^3 float32 array in [0, 1]."""
    import nibabel as nib

    p = Path(path)
    if not p.is_file():
        raise SampleError(f"sample {p}: no such file")
    try:
        img = nib.load(str(p))
    except Exception as exc:  # nibabel raises several types for non-NIfTI input
        raise SampleError(f"sample {p}: not a readable NIfTI image ({type(exc).__name__}: {exc})") from None
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        img = img.slicer[..., 0]
    elif len(shape) != 3:
        raise SampleError(f"sample {p}: expected a 3-D volume, got {len(shape)}-D shape {tuple(shape)}")
    return conform_ras(img)


def conform_ras(img) -> np.ndarray:
    """RAS canonical, 256^3 at 1 mm, min-max normalised (float32)."""
    import nibabel as nib

    canon = nib.as_closest_canonical(img)
    zooms = tuple(float(z) for z in canon.header.get_zooms()[:3])
    if canon.shape[:3] != CONFORMED_SHAPE or any(abs(z - 1.0) > 1e-3 for z in zooms):
        from nibabel.processing import conform

        canon = conform(canon, out_shape=CONFORMED_SHAPE, voxel_size=(1.0, 1.0, 1.0), orientation="RAS", order=1)
    data = np.asarray(canon.dataobj, dtype=np.float32)
    return minmax(data)


def minmax(data: np.ndarray) -> np.ndarray:
    lo, hi = float(data.min()), float(data.max())
    if hi <= lo:
        return np.zeros_like(data, dtype=np.float32)
    return ((data - lo) / (hi - lo)).astype(np.float32)


def center_crop(volume: np.ndarray, size: int) -> np.ndarray:
    """Cube of side ``size`` from the centre of a 3-D volume (the whole volume if size >= its side)."""
    starts = [max((s - size) // 2, 0) for s in volume.shape]
    return np.ascontiguousarray(volume[tuple(slice(st, st + size) for st in starts)])


def random_volume(size: int, seed: int) -> np.ndarray:
    """Seeded uniform [0, 1) cube, the MRI-independent parity input."""
    return np.random.default_rng(seed).random((size, size, size), dtype=np.float32)
