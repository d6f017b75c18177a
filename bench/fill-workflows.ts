// The job bench's workflows (bench/gpu_job.py --workflows), filled the way a job fills them:
//   npx tsx bench/fill-workflows.ts OUT_DIR [--variant fp8]
// Five jobs in name order: a cold standard job, a warm standard one (new seed and inputs), the
// first 512×512×33 (a new shape), a warm 512×512×33, and the standard job for the restarted
// process. Inputs: the sample sets a (reference_a.png, dance_a.mp4) and b made by
// scripts/make_samples.py (bench/pipeline-gpu.md says how).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveParams } from '../src/comfy/params.js';
import { fillWorkflow, loadTemplate } from '../src/comfy/workflow.js';

const out = process.argv[2];
if (!out) {
  console.error('usage: npx tsx bench/fill-workflows.ts OUT_DIR [--variant fp8|fp16]');
  process.exit(2);
}
const vi = process.argv.indexOf('--variant');
const variant = vi > 0 ? process.argv[vi + 1] : 'fp8';
const jobs: Array<[string, Record<string, unknown>, string]> = [
  ['1-std-cold', { width: 480, height: 832, frames: 81, seed: 1 }, 'a'],
  ['2-std-warm', { width: 480, height: 832, frames: 81, seed: 2 }, 'b'],
  ['3-512-first', { width: 512, height: 512, frames: 33, seed: 3 }, 'a'],
  ['4-512-warm', { width: 512, height: 512, frames: 33, seed: 4 }, 'b'],
  ['5-std-restart', { width: 480, height: 832, frames: 81, seed: 5 }, 'a'],
];
mkdirSync(out, { recursive: true });
const template = loadTemplate();
for (const [name, raw, set] of jobs) {
  const params = resolveParams({ ...raw, preset: 'fast', variant }, undefined, { defaultVariant: variant as 'fp8' });
  const wf = fillWorkflow(template, params, { image: `reference_${set}.png`, video: `dance_${set}.mp4`, outputPrefix: `bench/${name}` });
  writeFileSync(join(out, `${name}.json`), `${JSON.stringify(wf, null, 1)}\n`);
  console.log(`${name}: ${params.width}x${params.height}x${params.frames} seed ${params.seed} (${set})`);
}
