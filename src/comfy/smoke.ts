/**
 * `steadydancer smoke`: the running image (or any ComfyUI) makes a dance video.
 * UI reachable → /object_info has every node type → (browser) the UI workflow loads with no
 * missing-node dialog → samples uploaded → a 512×512 ~30-frame job → progress over /ws →
 * the mp4 fetched and checked with ffprobe (codec, frame count, size).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ActionableError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { dockerDir } from '../util/paths.js';
import { ComfyClient } from './client.js';
import { findVideo } from './outputs.js';
import { resolveParams, type DanceParamsInput } from './params.js';
import { fillWorkflow, loadTemplate, nodeTypes } from './workflow.js';

const pexec = promisify(execFile);

export interface SmokeCheck {
  name: string;
  status: 'pass' | 'fail' | 'skip';
  detail: string;
  ms: number;
}
export interface SmokeResult {
  ok: boolean;
  url: string;
  checks: SmokeCheck[];
  video?: { path: string; codec: string; width: number; height: number; frames: number };
  seed?: number;
}

export interface SmokeOptions {
  url: string;
  outDir: string;
  params?: DanceParamsInput;
  browser?: boolean;
  chromium?: string;
  logger: Logger;
  signal?: AbortSignal;
}

export async function ffprobeVideo(path: string): Promise<{ codec: string; width: number; height: number; frames: number }> {
  const { stdout } = await pexec('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,width,height,nb_read_frames', '-of', 'json', path]);
  const s = (JSON.parse(stdout).streams ?? [])[0];
  if (!s) throw new ActionableError(`ffprobe found no video stream in ${path}`, { code: 'E_BAD_VIDEO' });
  return { codec: s.codec_name, width: s.width, height: s.height, frames: Number(s.nb_read_frames) };
}

/** Load the UI workflow in a real browser (playwright-core + Debian's Chromium); screenshot. */
export async function browserCheck(url: string, uiWorkflow: unknown, screenshot: string, chromium = '/usr/bin/chromium'): Promise<string> {
  if (!existsSync(chromium)) throw new ActionableError(`no Chromium at ${chromium}`, { code: 'E_NO_CHROMIUM', hint: 'scripts/ensure-chromium.sh (apt-get install -y chromium)' });
  const { chromium: pw } = await import('playwright-core');
  const browser = await pw.launch({ executablePath: chromium, args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 60_000 });
    await page.waitForFunction(() => Boolean((globalThis as unknown as { app?: { graph?: unknown } }).app?.graph), undefined, { timeout: 90_000 });
    const missing = await page.evaluate(async (wf) => {
      const w = globalThis as unknown as { app: { loadGraphData: (g: unknown) => Promise<void>; graph: { _nodes: { type: string; has_errors?: boolean }[] } }; LiteGraph: { registered_node_types: Record<string, unknown> } };
      await w.app.loadGraphData(wf);
      const types = (wf as { nodes: { type: string }[] }).nodes.map((n) => n.type);
      return types.filter((t) => !(t in w.LiteGraph.registered_node_types));
    }, uiWorkflow);
    await page.waitForTimeout(1500);
    const dialog = await page.locator('text=/missing/i').count();
    await page.screenshot({ path: screenshot });
    if (missing.length) throw new ActionableError(`the UI does not know these node types: ${missing.join(', ')}`, { code: 'E_MISSING_NODES' });
    if (dialog) throw new ActionableError('the UI showed a missing-nodes/models dialog after loading the workflow', { code: 'E_MISSING_NODES', hint: `see ${screenshot}` });
    return screenshot;
  } finally {
    await browser.close();
  }
}

export async function smoke(opts: SmokeOptions): Promise<SmokeResult> {
  const { logger: log } = opts;
  const client = new ComfyClient({ url: opts.url });
  const checks: SmokeCheck[] = [];
  const result: SmokeResult = { ok: false, url: opts.url, checks };
  mkdirSync(opts.outDir, { recursive: true });
  const step = async (name: string, fn: () => Promise<string>): Promise<boolean> => {
    const t = Date.now();
    try {
      const detail = await fn();
      checks.push({ name, status: 'pass', detail, ms: Date.now() - t });
      log.info(`PASS ${name}: ${detail}`);
      return true;
    } catch (err) {
      checks.push({ name, status: 'fail', detail: (err as Error).message, ms: Date.now() - t });
      log.error(`FAIL ${name}: ${(err as Error).message}`);
      return false;
    }
  };
  const template = loadTemplate();
  const ok =
    (await step('UI reachable', async () => {
      const s = await client.systemStats(opts.signal);
      return `ComfyUI ${String((s.system as { comfyui_version?: string }).comfyui_version ?? '?')} on ${String(s.devices[0]?.name ?? '?')}`;
    })) &&
    (await step('node types', async () => {
      const missing = await client.missingNodeTypes(nodeTypes(template), opts.signal);
      if (missing.length) throw new ActionableError(`/object_info lacks ${missing.join(', ')}`, { code: 'E_MISSING_NODES' });
      return `all ${nodeTypes(template).length} node types present`;
    }));
  if (!ok) return result;
  if (opts.browser === false) checks.push({ name: 'browser', status: 'skip', detail: '--no-browser', ms: 0 });
  else
    await step('browser: UI workflow loads', async () => {
      const ui = JSON.parse(readFileSync(join(dockerDir(), 'workflows', 'steadydancer-dance.json'), 'utf8'));
      return `no missing nodes; screenshot ${await browserCheck(opts.url, ui, join(opts.outDir, 'ui-workflow.png'), opts.chromium)}`;
    });
  const params = resolveParams({ width: 512, height: 512, frames: 30, ...opts.params });
  result.seed = params.seed;
  let names = { image: '', video: '' };
  const uploaded = await step('upload samples', async () => {
    const s = join(dockerDir(), 'samples');
    const img = await client.upload(join(s, 'reference.png'), { subfolder: 'smoke', signal: opts.signal });
    const vid = await client.upload(join(s, 'dance.mp4'), { subfolder: 'smoke', signal: opts.signal });
    names = { image: `${img.subfolder}/${img.name}`, video: `${vid.subfolder}/${vid.name}` };
    return `${names.image}, ${names.video}`;
  });
  if (!uploaded) return result;
  let mp4 = '';
  const ran = await step(`job ${params.width}×${params.height}×${params.frames}`, async () => {
    const wf = fillWorkflow(template, params, { ...names, outputPrefix: 'smoke/dance' });
    let last = 0;
    const r = await client.run(wf, {
      signal: opts.signal,
      onEvent: (e) => {
        if (e.type === 'executing' && e.node) log.debug(`executing node ${e.node}`);
        if (e.type === 'progress' && Date.now() - last > 2000) {
          last = Date.now();
          log.info(`  node ${e.node ?? '?'}: ${e.value}/${e.max}`);
        }
      },
    });
    const v = findVideo(r.outputs);
    if (!v) throw new ActionableError(`the job finished without a video output (outputs of nodes ${Object.keys(r.outputs).join(', ')})`, { code: 'E_NO_VIDEO' });
    mp4 = join(opts.outDir, 'smoke.mp4');
    writeFileSync(mp4, await client.view(v, opts.signal));
    return `prompt ${r.promptId} → ${v.subfolder}/${v.filename}`;
  });
  if (!ran) return result;
  await step('ffprobe', async () => {
    const p = await ffprobeVideo(mp4);
    result.video = { path: mp4, ...p };
    const want = { codec: 'h264', width: params.width, height: params.height, frames: params.frames };
    const bad = (Object.keys(want) as (keyof typeof want)[]).filter((k) => p[k] !== want[k]);
    if (bad.length) throw new ActionableError(`mp4 ${bad.map((k) => `${k} ${p[k]} ≠ ${want[k]}`).join(', ')}`, { code: 'E_BAD_VIDEO' });
    return `${p.codec} ${p.width}×${p.height}, ${p.frames} frames`;
  });
  result.ok = checks.every((c) => c.status !== 'fail');
  return result;
}
