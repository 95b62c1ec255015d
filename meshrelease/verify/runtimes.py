"""Running the reference (PyTorch eager) and the artifacts (onnxruntime) on the same input."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def torch_logits(model, volume: np.ndarray) -> np.ndarray:
    """PyTorch eager, eval mode, no grad: (D,H,W) -> logits (1,C,D,H,W)."""
    import torch

    model.eval()
    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(volume[None, None], dtype=np.float32))).numpy()


def onnx_session(path: str | Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: ORT's warnings are not the user's business here
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_logits(session, volume: np.ndarray) -> np.ndarray:
    """(D,H,W) -> logits (1,C,D,H,W) through an onnxruntime session."""
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.ascontiguousarray(volume[None, None], dtype=np.float32)})[0]
