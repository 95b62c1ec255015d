// Load a TF.js layers-model folder from disk with tf.loadLayersModel and run one crop through it.
//
//   node run.mjs --model DIR [--input IN.f32 --shape D,H,W --output OUT.f32] [--backend cpu]
//
// Input: raw little-endian float32, D*H*W values (one channel, C order). Output: raw float32
// [D, H, W, classes] (channels-last). The last stdout line is a JSON summary. Pure-JS tfjs has no
// file:// loader, so a small IOHandler reads model.json and the shards itself. model.apply is used
// because predict() rejects any shape but the declared [null, 256, 256, 256, 1].
import * as tf from '@tensorflow/tfjs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

function parseArgs(argv) {
  const out = { backend: 'cpu' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    out[key] = argv[i + 1];
  }
  if (!out.model) throw new Error('usage: run.mjs --model DIR [--input F --shape D,H,W --output F] [--backend cpu]');
  return out;
}

function folderHandler(dir) {
  return {
    load: async () => {
      const modelJSON = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
      return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
        const specs = [];
        const buffers = [];
        for (const group of manifest) {
          for (const p of group.paths) {
            const buf = await readFile(path.join(dir, p));
            buffers.push(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
          }
          specs.push(...group.weights);
        }
        return [specs, tf.io.concatenateArrayBuffers(buffers)];
      });
    },
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  await tf.setBackend(args.backend);
  await tf.ready();
  const t0 = performance.now();
  const model = await tf.loadLayersModel(folderHandler(args.model));
  const t1 = performance.now();
  const summary = {
    tfjs: tf.version.tfjs,
    backend: tf.getBackend(),
    layers: model.layers.length,
    input_shape: model.inputs[0].shape,
    load_s: (t1 - t0) / 1000,
  };
  if (args.input) {
    const shape = args.shape.split(',').map(Number);
    const raw = await readFile(args.input);
    const values = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    const expected = shape.reduce((a, b) => a * b, 1);
    if (values.length !== expected) throw new Error(`input has ${values.length} values, shape ${shape} needs ${expected}`);
    const x = tf.tensor(values, [1, ...shape, 1], 'float32');
    const t2 = performance.now();
    const y = model.apply(x, { training: false });
    const data = await y.data();
    summary.run_s = (performance.now() - t2) / 1000;
    summary.output_shape = y.shape;
    await writeFile(args.output, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    tf.dispose([x, y]);
  }
  console.log(JSON.stringify(summary));
}

main().catch((err) => {
  console.error(`tfjs: ${err && err.message ? err.message : err}`);
  process.exit(1);
});
