"""The released TF.js folder loads and segments in a real browser: headless Debian Chromium, tfjs from npm."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import torch

from meshrelease.export.orientation import reorient_volume
from meshrelease.export.tfjs import export_pytorch_to_tfjs
from meshrelease.model.meshnet import MeshNet, MeshNetSpec
from meshrelease.verify.mri import load_sample
from meshrelease.verify.parity import compare_logits, DEFAULT_THRESHOLDS
from meshrelease.verify.runtimes import torch_logits
from meshrelease.verify.tfjs_parity import RUNNER_DIR, brainchop_conform, crop_box, reorient_box

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
T1 = SHARED / "brainchop" / "t1_crop.nii.gz"
CHECKPOINT = SHARED / "arc-meshchop" / "fold_0_restart_0" / "final.pt"
TFJS_BUNDLE = RUNNER_DIR / "node_modules" / "@tensorflow" / "tfjs" / "dist" / "tf.min.js"
CROP = 16

PAGE = """<!doctype html><meta charset="utf-8"><title>meshrelease tfjs check</title>
<script src="tf.min.js"></script>
<script>
window.runCrop = async () => {
  await tf.setBackend('cpu');
  await tf.ready();
  const model = await tf.loadLayersModel('model/model.json');
  const buf = await (await fetch('input.f32')).arrayBuffer();
  const x = tf.tensor(new Float32Array(buf), [1, %(d)d, %(h)d, %(w)d, 1]);
  const t0 = performance.now();
  const y = model.apply(x, {training: false});
  const values = Array.from(await y.data());
  return {shape: y.shape, values, backend: tf.getBackend(), tfjs: tf.version.tfjs,
          seconds: (performance.now() - t0) / 1000, declared: model.inputs[0].shape};
};
</script>"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


def _serve(folder: Path):
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_released_tfjs_model_segments_like_pytorch_in_headless_chromium(tmp_path):
    net = MeshNet(MeshNetSpec(channels=26))
    net.load_state_dict(torch.load(CHECKPOINT, weights_only=True, map_location="cpu")["model_state_dict"])
    net.eval()
    site = tmp_path / "site"
    export_pytorch_to_tfjs(net, site / "model")
    shutil.copy(TFJS_BUNDLE, site / "tf.min.js")

    # BrainChop's input (LIA conformed) for the centre crop; PyTorch gets the same voxels in RAS.
    ras = load_sample(T1)
    box = crop_box(ras.shape, CROP)
    lia_crop = np.ascontiguousarray(brainchop_conform(T1)[reorient_box(box, ras.shape, "RAS", "LIA")])
    (site / "input.f32").write_bytes(lia_crop.astype("<f4").tobytes())
    d, h, w = lia_crop.shape
    (site / "index.html").write_text(PAGE % {"d": d, "h": h, "w": w})

    server = _serve(site)
    try:
        start = time.perf_counter()
        proc = subprocess.run(
            ["node", str(REPO / "tests" / "browser" / "run_page.mjs"), f"http://127.0.0.1:{server.server_port}/index.html"],
            capture_output=True, text=True, timeout=240, cwd=REPO,
        )
        elapsed = time.perf_counter() - start
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["pageErrors"] == []
    assert "HeadlessChrome" in result["userAgent"]
    assert result["tfjs"] == "4.22.0" and result["backend"] == "cpu"
    assert result["declared"] == [None, 256, 256, 256, 1]
    assert result["shape"] == [1, d, h, w, 2]

    browser = np.asarray(result["values"], dtype=np.float32).reshape(d, h, w, 2)
    candidate = np.moveaxis(reorient_volume(browser, "LIA", "RAS"), -1, 0)[None]
    reference = torch_logits(net, np.ascontiguousarray(ras[box]))
    parity = compare_logits(reference, candidate, artifact="tfjs/model.json", precision="float32",
                            input_name=f"t1 centre {CROP}³", thresholds=DEFAULT_THRESHOLDS["fp32"], runtime="chromium")
    assert parity.failures == []
    assert parity.max_abs <= 1e-4
    assert parity.agreement == 1.0
    print(f"chromium {result['userAgent'].split('HeadlessChrome/')[1].split()[0]}: {CROP}³ crop in "
          f"{result['seconds']:.2f} s (whole test {elapsed:.1f} s), max |Δlogit| {parity.max_abs:.2e}")
