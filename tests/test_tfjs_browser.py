"""Released TF.js folders load and segment in a real browser: headless Debian Chromium, tfjs from npm."""

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

from meshrelease.checkpoint.brainchop_import import import_brainchop
from meshrelease.export.orientation import reorient_volume
from meshrelease.export.tfjs import export_pytorch_to_tfjs
from meshrelease.model.meshnet import MeshNet, MeshNetSpec
from meshrelease.verify.mri import load_sample
from meshrelease.verify.parity import DEFAULT_THRESHOLDS, compare_logits
from meshrelease.verify.runtimes import torch_logits
from meshrelease.verify.tfjs_parity import RUNNER_DIR, brainchop_conform, crop_box, reorient_box

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
T1 = SHARED / "brainchop" / "t1_crop.nii.gz"
CHECKPOINT = SHARED / "arc-meshchop" / "fold_0_restart_0" / "final.pt"
TFJS_BUNDLE = RUNNER_DIR / "node_modules" / "@tensorflow" / "tfjs" / "dist" / "tf.min.js"

PAGE = """<!doctype html><meta charset="utf-8"><title>meshrelease tfjs check</title>
<script src="tf.min.js"></script>
<script>
window.runCrop = async (job) => {
  await tf.setBackend('cpu');
  await tf.ready();
  const model = await tf.loadLayersModel(job.model);
  const buf = await (await fetch(job.input)).arrayBuffer();
  const x = tf.tensor(new Float32Array(buf), [1, ...job.shape, 1]);
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


def test_released_tfjs_models_segment_like_pytorch_in_headless_chromium(tmp_path):
    net = MeshNet(MeshNetSpec(channels=26))
    net.load_state_dict(torch.load(CHECKPOINT, weights_only=True, map_location="cpu")["model_state_dict"])
    # BrainChop's grey/white-matter MeshNet, imported (kernels to RAS) and re-released: its labels vary on a crop
    tissue = import_brainchop(SHARED / "brainchop" / "models" / "model5_gw_ae").to_model()
    site = tmp_path / "site"
    cases = {"meshnet26": (net.eval(), 16, None), "gw_ae": (tissue, 32, (128, 150, 140))}
    ras, lia = load_sample(T1), brainchop_conform(T1)
    jobs, references = [], {}
    for name, (model, side, center) in cases.items():
        export_pytorch_to_tfjs(model, site / name)
        # BrainChop's input (LIA conformed) for the crop; PyTorch gets the same voxels in RAS
        box = crop_box(ras.shape, side, center)
        lia_crop = np.ascontiguousarray(lia[reorient_box(box, ras.shape, "RAS", "LIA")])
        (site / f"{name}.f32").write_bytes(lia_crop.astype("<f4").tobytes())
        jobs.append({"model": f"{name}/model.json", "input": f"{name}.f32", "shape": list(lia_crop.shape)})
        references[name] = torch_logits(model, np.ascontiguousarray(ras[box]))
    shutil.copy(TFJS_BUNDLE, site / "tf.min.js")
    (site / "index.html").write_text(PAGE)

    server = _serve(site)
    try:
        start = time.perf_counter()
        proc = subprocess.run(
            ["node", str(REPO / "tests" / "browser" / "run_page.mjs"), f"http://127.0.0.1:{server.server_port}/index.html",
             json.dumps(jobs)], capture_output=True, text=True, timeout=240, cwd=REPO,
        )
        elapsed = time.perf_counter() - start
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = json.loads(proc.stdout.strip().splitlines()[-1])
    assert page["pageErrors"] == [] and "HeadlessChrome" in page["userAgent"]
    for (name, (model, side, _)), job, result in zip(cases.items(), jobs, page["results"]):
        assert result["tfjs"] == "4.22.0" and result["backend"] == "cpu"
        assert result["declared"] == [None, 256, 256, 256, 1]
        classes = model.spec.classes
        assert result["shape"] == [1, *job["shape"], classes]
        browser = np.asarray(result["values"], dtype=np.float32).reshape(*job["shape"], classes)
        candidate = np.moveaxis(reorient_volume(browser, "LIA", "RAS"), -1, 0)[None]
        parity = compare_logits(references[name], candidate, artifact=f"{name}/model.json", precision="fp32",
                                input_name=f"t1 {side}³", thresholds=DEFAULT_THRESHOLDS["fp32"], runtime="chromium")
        assert parity.failures == [] and parity.max_abs <= 1e-4 and parity.agreement == 1.0
        print(f"chromium {name} {side}³: {result['seconds']:.2f} s, max |Δ| {parity.max_abs:.2e}, "
              f"labels present {sorted(np.unique(candidate[0].argmax(0)).tolist())}")
    assert len(np.unique(references["gw_ae"][0].argmax(0))) == 3  # the tissue crop really tests labels
    print(f"whole browser run {elapsed:.1f} s")
