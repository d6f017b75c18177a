/**
 * `steadydancer smoke`: checks a running ComfyUI the way a user meets it — the UI answers, every
 * node type of the workflow is installed, the UI-format workflow loads in a real browser with no
 * missing nodes, inputs upload, a short job runs (progress over the WebSocket), and the mp4 it
 * saves is what was asked for (ffprobe). Each step is a row: pass / fail / skip with the reason.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { ComfyClient } from '../comfy/client.js';
import { jobVariantFor, resolveParams, type ResolvedParams } from '../comfy/params.js';
import { fillWorkflow, loadTemplate, nodeTypes, templatePath, type ApiWorkflow } from '../comfy/workflow.js';
import { checkVideo, DEFAULT_LIMITS } from '../job/media.js';
import { runForVideo, type VideoRun } from '../job/pipeline-glue.js';
import type { Logger } from '../util/logger.js';

export type StepStatus = 'pass' | 'fail' | 'skip';
export interface SmokeStep {
  id: 'ui' | 'nodes' | 'browser' | 'upload' | 'job' | 'mp4';
  title: string;
  status: StepStatus;
  reason: string;
  durationMs: number;
  details?: Record<string, unknown>;
  /** Set (to what to do about it) when the step failed only for want of a host tool (Chromium). */
  environment?: string;
}
export interface SmokeResult {
  ok: boolean;
  url: string;
  steps: SmokeStep[];
}

export interface SmokeOptions {
  url: string;
  root: string;
  /** API-format workflow (default docker/workflows/steadydancer-dance.api.json). */
  workflow?: string;
  /** UI-format workflow (default docker/workflows/steadydancer-dance.json). */
  uiWorkflow?: string;
  image?: string;
  video?: string;
  screenshot?: string;
  out?: string;
  chromium?: string;
  browser?: boolean;
  /** Longest wait for each browser action (page load, frontend ready, screenshot); default 120 s. */
  browserTimeoutMs?: number;
  generate?: boolean;
  /** Workflow parameters over the smoke defaults (512×512, 30 frames → the 4n+1 rule). */
  params?: Record<string, unknown>;
  timeoutMs?: number;
  logger?: Logger;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

export const SMOKE_DEFAULTS = { width: 512, height: 512, frames: 30 } as const;
export const UI_WORKFLOW = 'docker/workflows/steadydancer-dance.json';
export const DEFAULT_CHROMIUM = '/usr/bin/chromium';

const TITLES: Record<SmokeStep['id'], string> = {
  ui: 'UI reachable',
  nodes: 'node types installed (/object_info)',
  browser: 'UI workflow loads in Chromium',
  upload: 'sample inputs uploaded',
  job: 'job queued and followed over the WebSocket',
  mp4: 'mp4 fetched and checked (ffprobe)',
};

const msg = (e: unknown) => (e instanceof Error ? e.message + ((e as { hint?: string }).hint ? ` (hint: ${(e as { hint?: string }).hint})` : '') : String(e));

interface UiNode {
  id?: number;
  type?: string;
}

/** The node types a UI-format workflow uses (its `nodes[].type`, and those of its subgraphs). */
export function uiNodeTypes(ui: unknown): string[] {
  const types = new Set<string>();
  const visit = (g: unknown) => {
    const nodes = (g as { nodes?: UiNode[] })?.nodes;
    if (Array.isArray(nodes)) for (const n of nodes) if (typeof n?.type === 'string') types.add(n.type);
  };
  visit(ui);
  const subs = (ui as { definitions?: { subgraphs?: unknown[] } })?.definitions?.subgraphs;
  if (Array.isArray(subs)) subs.forEach(visit);
  return [...types].sort();
}

export async function runSmoke(o: SmokeOptions): Promise<SmokeResult> {
  const steps: SmokeStep[] = [];
  const client = new ComfyClient({ url: o.url, requestTimeoutMs: 60_000 });
  const log = o.logger;
  const step = async (id: SmokeStep['id'], fn: () => Promise<Omit<SmokeStep, 'id' | 'title' | 'durationMs'>>): Promise<SmokeStep> => {
    const t0 = Date.now();
    let r: Omit<SmokeStep, 'id' | 'title' | 'durationMs'>;
    try {
      r = await fn();
    } catch (e) {
      r = { status: 'fail', reason: msg(e) };
    }
    const s: SmokeStep = { id, title: TITLES[id], ...r, durationMs: Date.now() - t0 };
    steps.push(s);
    log?.info(`${s.status.toUpperCase()} ${s.title}: ${s.reason}`);
    return s;
  };
  const skip = (id: SmokeStep['id'], reason: string) => step(id, async () => ({ status: 'skip', reason }));

  // 1. UI reachable: the page and /system_stats
  const ui = await step('ui', async () => {
    const res = await fetch(o.url + '/', { signal: AbortSignal.timeout(30_000) });
    const html = await res.text();
    if (!res.ok) return { status: 'fail', reason: `GET ${o.url}/ answered HTTP ${res.status}` };
    if (!/<html/i.test(html)) return { status: 'fail', reason: `GET ${o.url}/ is not an HTML page` };
    const s = await client.systemStats(o.signal);
    const v = (s.system as { comfyui_version?: string }).comfyui_version;
    return {
      status: 'pass',
      reason: `page and /system_stats answer${v ? ` (ComfyUI ${v})` : ''}; devices: ${s.devices.map((d) => String(d.type ?? d.name)).join(', ') || 'none'}`,
      details: { system: s.system, devices: s.devices.map((d) => d.name) },
    };
  });
  const reachable = ui.status === 'pass';

  // 2. node types of the API workflow
  const wfPath = resolve(o.root, o.workflow ?? templatePath(o.root));
  let template: ApiWorkflow | undefined;
  let templateError: string | undefined;
  try {
    template = loadTemplate(wfPath);
  } catch (e) {
    templateError = msg(e);
  }
  if (!reachable) await skip('nodes', 'ComfyUI is not reachable');
  else if (!template) await step('nodes', async () => ({ status: 'fail', reason: `cannot read the API workflow: ${templateError}` }));
  else {
    await step('nodes', async () => {
      const types = nodeTypes(template!);
      const missing = await client.missingNodeTypes(types, o.signal);
      return missing.length
        ? { status: 'fail', reason: `${missing.length} of ${types.length} node types are not installed: ${missing.join(', ')}`, details: { workflow: wfPath, types, missing } }
        : { status: 'pass', reason: `all ${types.length} node types of ${basename(wfPath)} are installed`, details: { workflow: wfPath, types, missing } };
    });
  }

  // 3. the UI-format workflow in a real browser
  if (o.browser === false) await skip('browser', '--no-browser');
  else if (!reachable) await skip('browser', 'ComfyUI is not reachable');
  else await step('browser', () => browserCheckOnceMore(o));

  // 4–6. upload, job, mp4
  if (o.generate === false) {
    for (const id of ['upload', 'job', 'mp4'] as const) await skip(id, '--no-generate');
    return { ok: steps.every((s) => s.status !== 'fail'), url: o.url, steps };
  }
  const image = resolve(o.root, o.image ?? 'docker/samples/reference.png');
  const video = resolve(o.root, o.video ?? 'docker/samples/dance.mp4');
  let names: { image: string; video: string } | undefined;
  if (!reachable) await skip('upload', 'ComfyUI is not reachable');
  else
    await step('upload', async () => {
      for (const f of [image, video]) if (!existsSync(f)) return { status: 'fail', reason: `${f} does not exist (the samples are made by scripts/make_samples.py)` };
      const up = async (f: string) => {
        const r = await client.upload({ data: readFileSync(f), name: `smoke-${basename(f)}` }, { overwrite: true, signal: o.signal });
        return r.subfolder ? `${r.subfolder}/${r.name}` : r.name;
      };
      names = { image: await up(image), video: await up(video) };
      return { status: 'pass', reason: `uploaded ${names.image} and ${names.video}`, details: { ...names } };
    });

  let params: ResolvedParams | undefined;
  let videoBytes: Buffer | undefined;
  if (!names) await skip('job', 'the inputs were not uploaded');
  else if (!template) await skip('job', `no API workflow: ${templateError}`);
  else
    await step('job', async () => {
      params = resolveParams({ ...SMOKE_DEFAULTS, ...(o.params ?? {}) }, undefined, { defaultVariant: jobVariantFor(o.env ?? process.env).variant });
      const wf = fillWorkflow(template!, params, { image: names!.image, video: names!.video, outputPrefix: 'steadydancer/smoke' });
      const progress: Array<{ node?: string; value: number; max: number }> = [];
      let lastLog = 0;
      const signal = AbortSignal.any([AbortSignal.timeout(o.timeoutMs ?? 1_800_000), ...(o.signal ? [o.signal] : [])]);
      let r: VideoRun;
      try {
        r = await runForVideo(client, wf, {
          signal,
          onEvent: (ev) => {
            if (ev.type !== 'progress') return;
            progress.push({ node: ev.node ?? undefined, value: ev.value, max: ev.max });
            if (Date.now() - lastLog > 2_000 || ev.value === ev.max) {
              lastLog = Date.now();
              log?.info(`  progress ${ev.value}/${ev.max}${ev.node ? ` (node ${ev.node} ${wf[ev.node]?.class_type ?? ''})` : ''}`);
            }
          },
        });
      } catch (err) {
        // same text as the worker's job gets; smoke reports it as this step's failure
        if (/saved no video/.test((err as Error).message)) return { status: 'fail', reason: (err as Error).message };
        throw err;
      }
      const { ref } = r;
      videoBytes = r.bytes;
      const last = progress[progress.length - 1];
      return {
        status: 'pass',
        reason: `prompt ${r.promptId} finished; ${progress.length} progress events${last ? ` (last ${last.value}/${last.max})` : ''}; ${ref.filename} (${videoBytes.length} bytes)`,
        details: {
          promptId: r.promptId,
          params: { width: params.width, height: params.height, frames: params.frames, framesRequested: params.framesRequested, steps: params.steps, seed: params.seed },
          progressEvents: progress.length,
          output: ref,
        },
      };
    });

  if (!videoBytes || !params) await skip('mp4', 'no video came back from the job');
  else
    await step('mp4', async () => {
      const out = resolve(o.root, o.out ?? 'reports/smoke.mp4');
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, videoBytes!);
      const info = await checkVideo('output', out, { ...DEFAULT_LIMITS, maxVideoFrames: 100_000, maxVideoSeconds: 3_600, maxVideoSide: 8192 }, o.signal);
      const p = params!;
      const problems: string[] = [];
      if (info.codec !== 'h264') problems.push(`codec ${info.codec}, expected h264`);
      if (info.width !== p.width || info.height !== p.height) problems.push(`${info.width}x${info.height}, expected ${p.width}x${p.height}`);
      if (info.frames !== p.frames) problems.push(`${info.frames} frames, expected ${p.frames}`);
      const what = `${info.codec} ${info.width}x${info.height}, ${info.frames} frames at ${info.fps.toFixed(2)} fps`;
      return problems.length
        ? { status: 'fail', reason: `${out}: ${problems.join('; ')} (${what})`, details: { file: out, ...info } }
        : { status: 'pass', reason: `${out}: ${what}`, details: { file: out, ...info } };
    });

  return { ok: steps.every((s) => s.status !== 'fail'), url: o.url, steps };
}

/**
 * Page errors and error toasts that are known and harmless for this workflow, each with why. A
 * browser check fails on any other page error or error toast.
 */
export interface BenignPageError {
  /** The message (a line of it). */
  match: RegExp;
  /** When given, the error's stack must match too (for a message too generic on its own). */
  stack?: RegExp;
  reason: string;
}

export const BENIGN_PAGE_ERRORS: ReadonlyArray<BenignPageError> = [
  {
    match: /^Keybinding on f already exists on Workspace\.ToggleFocusMode$/,
    reason:
      'ComfyUI-KJNodes (web/js/fillconnect.js) registers the key f for its Fill-Connect command, which the pinned frontend (1.27) already binds to Workspace.ToggleFocusMode; ' +
      'the frontend refuses the second binding and shows this error. Only that KJNodes shortcut is lost (the command stays in the menu); the dance workflow does not use it, and it is not caused by our pack or workflow.',
  },
  {
    match: /^Cannot read properties of undefined \(reading 'id'\)$/,
    stack: /at onChange \([^)]*\)\s+at Proxy\.set [\s\S]*at Proxy\.addSetting /,
    reason:
      "The pinned frontend's own start-up (1.27.10): registering the core setting Comfy.Canvas.NavigationMode runs its onChange, which sets Comfy.Canvas.LeftMouseClickBehavior before that setting is registered, and the store reads the missing setting's id. " +
      'It comes from the core settings alone (no node pack involved) and repeats on every page load until both canvas settings are stored for the user; the settings keep their defaults. An upstream frontend bug, not caused by our pack or workflow.',
  },
];

/** Splits page errors / error toasts (a text, or a page error's message and stack) into the known-benign ones (with their reason) and the rest. */
export function classifyPageErrors(errors: Array<string | { message: string; stack?: string }>): { benign: Array<{ message: string; reason: string }>; bad: string[] } {
  const benign: Array<{ message: string; reason: string }> = [];
  const bad: string[] = [];
  for (const e of errors) {
    const message = (typeof e === 'string' ? e : e.message).trim();
    const stack = typeof e === 'string' ? '' : (e.stack ?? '');
    if (!message) continue;
    const known = BENIGN_PAGE_ERRORS.find((b) => (b.match.test(message) || message.split('\n').some((l) => b.match.test(l.trim()))) && (!b.stack || b.stack.test(stack)));
    if (known) benign.push({ message, reason: known.reason });
    else bad.push(message);
  }
  return { benign, bad };
}

/**
 * Records the text of every error toast (PrimeVue's p-toast, severity error) the frontend shows,
 * from the page's first script on: a toast closes itself or is closed by settle()'s Escape.
 */
const TOAST_RECORDER = `(() => {
  window.__sdErrorToasts = [];
  const seen = new WeakSet();
  const scan = () => {
    for (const e of document.querySelectorAll('.p-toast-message-error')) {
      if (seen.has(e)) continue;
      seen.add(e);
      setTimeout(() => {
        const d = e.querySelector('.p-toast-detail');
        const s = e.querySelector('.p-toast-summary');
        window.__sdErrorToasts.push(((d && d.innerText) || (s && s.innerText) || e.innerText || '').trim());
      }, 50);
    }
  };
  new MutationObserver(scan).observe(document, { childList: true, subtree: true });
})()`;

async function errorToasts(page: Page): Promise<string[]> {
  return (await page.evaluate('window.__sdErrorToasts || []')) as string[];
}

/**
 * Zooms the canvas so that the whole graph fits a viewport sized for it, at a scale where the
 * node titles are legible (≥ 0.6; the viewport grows up to 4096×2560 instead of zooming out).
 */
async function fitGraph(page: Page): Promise<{ scale: number; width: number; height: number }> {
  const b = (await page.evaluate(`(() => {
    const g = window.app.graph;
    const r = window.app.canvas.canvas.getBoundingClientRect();
    const nodes = g._nodes || g.nodes || [];
    const titleH = (window.LiteGraph && window.LiteGraph.NODE_TITLE_HEIGHT) || 30;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const n of nodes) {
      const x = n.pos[0], y = n.pos[1] - titleH, w = n.size[0], h = n.size[1] + titleH;
      x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + w); y1 = Math.max(y1, y + h);
    }
    return nodes.length ? { x0, y0, x1, y1, left: r.left, top: r.top, right: window.innerWidth - r.right, bottom: window.innerHeight - r.bottom } : null;
  })()`)) as { x0: number; y0: number; x1: number; y1: number; left: number; top: number; right: number; bottom: number } | null;
  const current = page.viewportSize() ?? { width: 1600, height: 1000 };
  if (!b) return { scale: 1, ...current };
  // the canvas sits inside the frontend's menu bar (top) and side toolbar (left): fit to the canvas
  const chrome = { left: Math.max(0, b.left), top: Math.max(0, b.top), right: Math.max(0, b.right), bottom: Math.max(0, b.bottom) };
  const pad = 30;
  const margin = { left: chrome.left + pad, top: chrome.top + pad, right: chrome.right + pad, bottom: chrome.bottom + pad };
  const w = b.x1 - b.x0;
  const h = b.y1 - b.y0;
  const scale = Math.max(0.6, Math.min(1, (4096 - margin.left - margin.right) / w, (2560 - margin.top - margin.bottom) / h));
  const width = Math.min(4096, Math.max(1280, Math.ceil(w * scale + margin.left + margin.right)));
  const height = Math.min(2560, Math.max(800, Math.ceil(h * scale + margin.top + margin.bottom)));
  await page.setViewportSize({ width, height });
  await page.waitForTimeout(500);
  await page.evaluate(`(() => {
    const c = window.app.canvas;
    c.ds.scale = ${scale};
    c.ds.offset[0] = ${pad / scale - b.x0};
    c.ds.offset[1] = ${pad / scale - b.y0};
    c.setDirty(true, true);
    if (c.draw) c.draw(true, true);
  })()`);
  await page.waitForTimeout(500);
  return { scale, width, height };
}

/** The frontend's missing-nodes dialog ("Some Nodes Are Missing" / "...the following node types
 *  were not found") and its missing-models one, in its English texts. */
const MISSING_NODES = /Some Nodes Are Missing|node types were not found/i;
const MISSING_MODELS = /Missing Models|models were not found/i;

type Page = import('playwright-core').Page;

/** innerText of every visible dialog on the page. */
async function visibleDialogs(page: Page): Promise<string[]> {
  return (await page.evaluate(`(() => {
    const els = Array.from(document.querySelectorAll('[role="dialog"], .p-dialog, .comfy-modal, dialog'));
    return els.filter((e) => e.getClientRects().length > 0 && getComputedStyle(e).display !== 'none').map((e) => e.innerText);
  })()`)) as string[];
}

/** Waits until the page has shown no new dialog for 2 s (at most 30 s), closing each with Escape. */
async function settle(page: Page): Promise<void> {
  const end = Date.now() + 30_000;
  let quietSince = Date.now();
  while (Date.now() < end && Date.now() - quietSince < 2_000) {
    await page.waitForTimeout(500);
    if ((await visibleDialogs(page)).length) {
      await page.keyboard.press('Escape');
      quietSince = Date.now();
    }
  }
}

/** Loads ComfyUI's page in Chromium, loads the UI-format workflow through the page's app API,
 *  looks for node types the page does not know and for a missing-nodes dialog, saves a screenshot. */
async function browserCheck(o: SmokeOptions): Promise<Omit<SmokeStep, 'id' | 'title' | 'durationMs'>> {
  const exe = o.chromium ?? o.env?.CHROMIUM_PATH ?? DEFAULT_CHROMIUM;
  if (!existsSync(exe))
    return {
      status: 'fail',
      reason: `Chromium is not at ${exe} (scripts/ensure-tools.sh installs Debian's chromium; or pass --chromium / CHROMIUM_PATH, or --no-browser)`,
      environment: "install Chromium (`make tools` as root installs Debian's chromium), or pass --chromium PATH or --no-browser",
    };
  const uiPath = resolve(o.root, o.uiWorkflow ?? UI_WORKFLOW);
  let ui: unknown;
  let uiMissing: string | undefined;
  if (!existsSync(uiPath)) uiMissing = `${uiPath} does not exist`;
  else {
    try {
      ui = JSON.parse(readFileSync(uiPath, 'utf8'));
    } catch (e) {
      return { status: 'fail', reason: `${uiPath} is not JSON: ${msg(e)}` };
    }
    if (!Array.isArray((ui as { nodes?: unknown })?.nodes))
      return { status: 'fail', reason: `${uiPath} is not a UI-format workflow (no "nodes" list; an API-format file cannot be loaded as a graph)` };
  }
  const screenshot = resolve(o.root, o.screenshot ?? 'reports/smoke-ui.png');
  mkdirSync(dirname(screenshot), { recursive: true });
  const { chromium } = await import('playwright-core');
  const pageTimeout = o.browserTimeoutMs ?? 120_000;
  let stage = 'launching Chromium';
  const browser = await chromium.launch({ executablePath: exe, headless: true, timeout: 120_000, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    page.setDefaultTimeout(pageTimeout);
    stage = `loading ${o.url}/`;
    const consoleErrors: string[] = [];
    const pageErrors: Array<{ message: string; stack?: string }> = [];
    const errorStacks: string[] = [];
    page.on('pageerror', (e) => {
      consoleErrors.push(e.message);
      errorStacks.push(e.stack ?? e.message);
      pageErrors.push({ message: e.message, stack: e.stack });
    });
    await page.addInitScript(TOAST_RECORDER);
    await page.goto(o.url + '/', { waitUntil: 'domcontentloaded', timeout: pageTimeout });
    stage = 'waiting for the frontend (window.app, registered node types)';
    // Page-side code is given as strings: this package compiles without the DOM library.
    await page.waitForFunction(
      'Boolean(window.app && window.app.graph && window.LiteGraph && window.LiteGraph.registered_node_types && Object.keys(window.LiteGraph.registered_node_types).length > 0)',
      undefined,
      { timeout: pageTimeout },
    );
    const title = await page.title();
    stage = "letting the frontend's start-up dialogs settle";
    // At start the frontend loads its default graph and may open dialogs of its own (templates;
    // "Missing Models" for the default graph's checkpoint), later on a loaded machine. Let it
    // settle, close what it opened, then load ours on a cleared canvas.
    await settle(page);
    if (!ui) {
      stage = 'taking the screenshot';
      await page.screenshot({ path: screenshot });
      return {
        status: 'skip',
        reason: `ComfyUI's page loaded in Chromium (title "${title}", screenshot ${screenshot}), but the UI workflow was not checked: ${uiMissing}`,
        details: { screenshot, title, workflow: null },
      };
    }
    stage = 'loading the UI workflow into the page';
    const r = (await page.evaluate(`(async (graph) => {
      if (window.app.graph.clear) window.app.graph.clear();
      await window.app.loadGraphData(graph);
      const known = window.LiteGraph.registered_node_types;
      const unknownTypes = [...new Set(graph.nodes.map((n) => n.type).filter((t) => !(t in known)))];
      const g = window.app.graph;
      return { unknownTypes, loaded: (g._nodes || g.nodes || []).length };
    })(${JSON.stringify(ui)})`)) as { unknownTypes: string[]; loaded: number };
    // Give the frontend a moment to open its missing-nodes dialog, then look for one.
    await page.waitForTimeout(1_500);
    stage = 'looking for a missing-nodes dialog';
    const texts = await visibleDialogs(page);
    const dialog = texts.find((t) => MISSING_NODES.test(t))?.slice(0, 800) ?? '';
    const modelsDialog = texts.find((t) => MISSING_MODELS.test(t))?.slice(0, 800) ?? '';
    // A first-run frontend opens its template browser over the canvas; close what is not the
    // missing-nodes dialog so that the screenshot shows the loaded graph.
    if (!dialog) {
      await page.keyboard.press('Escape');
      await page.waitForTimeout(500);
    }
    stage = 'looking for error toasts';
    const toasts = await errorToasts(page);
    stage = 'fitting the graph for the screenshot';
    // the toasts were recorded; the minimap would cover part of the graph
    await page.addStyleTag({ content: '.p-toast { display: none !important; }' });
    await page.evaluate(`(async () => { try { await window.app.extensionManager.setting.set('Comfy.Minimap.Visible', false); } catch (e) {} })()`);
    // Fitting is for a readable screenshot only: a frontend without the canvas API we use (another
    // version, a stand-in page) still gets its screenshot and verdict; the reason is in the details.
    const view = await fitGraph(page).catch((e: unknown) => ({ fitError: (e instanceof Error ? e.message : String(e)).split('\n')[0] }));
    stage = 'taking the screenshot';
    await page.screenshot({ path: screenshot });
    const expected = uiNodeTypes(ui);
    const errors = classifyPageErrors([...pageErrors, ...new Set(toasts)]);
    // A missing-models dialog is recorded, not failed on: this step is about node types (the
    // job step finds missing models), and the frontend's default graph can raise one too.
    const details = {
      screenshot,
      title,
      workflow: uiPath,
      nodes: (ui as { nodes: unknown[] }).nodes.length,
      loadedNodes: r.loaded,
      types: expected,
      missing: r.unknownTypes,
      dialog: dialog || null,
      modelsDialog: modelsDialog || null,
      pageErrors: consoleErrors.slice(0, 10),
      pageErrorStacks: errorStacks.slice(0, 5).map((x) => x.split('\n').slice(0, 8).join('\n')),
      errorToasts: toasts.slice(0, 10),
      benignErrors: errors.benign,
      view,
    };
    if (r.unknownTypes.length || dialog)
      return {
        status: 'fail',
        reason: `the UI workflow has node types the page does not know: ${r.unknownTypes.join(', ') || '(see dialog)'}${dialog ? `; missing-nodes dialog: ${dialog.split('\n').slice(0, 3).join(' / ')}` : ''} (screenshot ${screenshot})`,
        details,
      };
    if (errors.bad.length)
      return {
        status: 'fail',
        reason: `the page reported ${errors.bad.length} error(s) (page errors or error toasts): ${errors.bad
          .slice(0, 3)
          .map((e) => e.split('\n')[0])
          .join(' / ')} (screenshot ${screenshot})`,
        details,
      };
    const benignNote = errors.benign.length ? `; ${errors.benign.length} known-benign page error(s): ${errors.benign.map((e) => e.message).join(' / ')}` : '';
    return {
      status: 'pass',
      reason: `${basename(uiPath)} loaded: ${r.loaded} nodes on the canvas, no missing node types, no missing-nodes dialog, no page errors${benignNote} (screenshot ${screenshot}, ${'scale' in view ? `zoom ${Math.round(view.scale * 100)} %` : `not fitted: ${view.fitError}`})`,
      details,
    };
  } catch (e) {
    throw new Error(`Chromium failed while ${stage}: ${msg(e).split('\n')[0]}`, { cause: e });
  } finally {
    await browser.close().catch(() => undefined);
  }
}

/**
 * The browser check, once more when it threw (a browser that crashed or timed out on a loaded
 * machine), not when it came to a verdict; the first error stays in the reason and details.
 */
async function browserCheckOnceMore(o: SmokeOptions): Promise<Omit<SmokeStep, 'id' | 'title' | 'durationMs'>> {
  try {
    return await browserCheck(o);
  } catch (e) {
    if (o.signal?.aborted) throw e;
    const first = msg(e);
    o.logger?.warn(`browser check: ${first}; trying once more`);
    let r: Awaited<ReturnType<typeof browserCheck>>;
    try {
      r = await browserCheck(o);
    } catch (e2) {
      throw new Error(`${msg(e2)} (and the first attempt: ${first})`, { cause: e2 });
    }
    return { ...r, reason: `${r.reason} (second attempt; the first: ${first})`, details: { ...r.details, firstAttemptError: first } };
  }
}

export function renderSmoke(r: SmokeResult): string {
  const icon = { pass: 'PASS', fail: 'FAIL', skip: 'SKIP' } as const;
  return [`smoke against ${r.url}`, ...r.steps.map((s) => `${icon[s.status]}  ${s.title.padEnd(44)} ${s.reason}`), r.ok ? 'ok' : 'FAILED'].join('\n');
}
