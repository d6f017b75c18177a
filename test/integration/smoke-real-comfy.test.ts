/**
 * `steadydancer smoke --no-generate` against a REAL ComfyUI started natively from the source
 * cache (without our node pack, so the dance workflow's SteadyDancer node types are absent), and
 * the browser check in Debian's Chromium driving ComfyUI's real frontend.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.js';
import type { NativeComfy } from '../../src/comfy/native.js';
import { loadTemplate, nodeTypes, templatePath } from '../../src/comfy/workflow.js';
import { DEFAULT_CHROMIUM, runSmoke, uiNodeTypes, type SmokeResult } from '../../src/plan/smoke.js';
import { projectRoot } from '../../src/util/paths.js';
import { comfySkipReason, startTestComfy } from '../helpers/comfy.js';
import { needs } from '../helpers/skips.js';
import { ensureTinyModels, tinyModelsSkipReason } from '../helpers/tiny-models.js';

const skip = needs('smoke against a native ComfyUI', comfySkipReason());
const chromium = process.env.CHROMIUM_PATH ?? DEFAULT_CHROMIUM;
const skipBrowser = skip || needs('smoke browser check', existsSync(chromium) ? undefined : `Chromium is not at ${chromium} (scripts/ensure-tools.sh installs Debian's chromium)`);

/** A UI-format graph (what the frontend saves) with the given node types, unlinked. */
function uiGraph(types: string[]) {
  return {
    last_node_id: types.length,
    last_link_id: 0,
    nodes: types.map((type, i) => ({ id: i + 1, type, pos: [100 + 320 * i, 100], size: [300, 120], flags: {}, order: i, mode: 0, inputs: [], outputs: [], properties: {}, widgets_values: [] })),
    links: [],
    groups: [],
    config: {},
    extra: {},
    version: 0.4,
  };
}

const step = (r: SmokeResult, id: string) => r.steps.find((s) => s.id === id)!;

describe.skipIf(skip)('smoke against a real ComfyUI', () => {
  let comfy: NativeComfy;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sd-smoke-'));
    // a node pack with no nodes, only a frontend extension that raises a page error or an error
    // toast for a graph node with a given title (the browser check must fail on both)
    const pack = join(dir, 'sd_test_page_errors');
    mkdirSync(join(pack, 'web'), { recursive: true });
    writeFileSync(join(pack, '__init__.py'), 'NODE_CLASS_MAPPINGS = {}\nWEB_DIRECTORY = "./web"\n');
    writeFileSync(
      join(pack, 'web', 'errors.js'),
      [
        'import { app } from "../../scripts/app.js";',
        'app.registerExtension({',
        '  name: "sd.test.pageErrors",',
        '  loadedGraphNode(node) {',
        '    if (node.title === "sd-test: page error") setTimeout(() => { throw new Error("sd-test: a page error on purpose"); }, 0);',
        '    if (node.title === "sd-test: toast") app.extensionManager.toast.add({ severity: "error", summary: "sd-test", detail: "sd-test: an error toast on purpose" });',
        '  },',
        '});',
        '',
      ].join('\n'),
    );
    comfy = await startTestComfy({ packs: [pack], readyTimeoutMs: 240_000 });
  }, 1_800_000);
  afterAll(async () => {
    await comfy?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists exactly the node types ComfyUI lacks (the dance workflow without our pack)', async () => {
    const r = await runSmoke({ url: comfy.url, root: projectRoot(), browser: false, generate: false });
    expect(step(r, 'ui').status).toBe('pass');
    const nodes = step(r, 'nodes');
    expect(nodes.status).toBe('fail');
    const ours = nodeTypes(loadTemplate(templatePath()))
      .filter((t) => t.startsWith('SteadyDancer'))
      .sort();
    expect(ours.length).toBeGreaterThan(0);
    expect((nodes.details!.missing as string[]).slice().sort()).toEqual(ours);
    expect(nodes.reason).toContain(ours.join(', ').split(', ')[0]);
    expect(r.ok).toBe(false);
    expect(r.steps.filter((s) => ['browser', 'upload', 'job', 'mp4'].includes(s.id)).map((s) => [s.id, s.status, s.reason])).toEqual([
      ['browser', 'skip', '--no-browser'],
      ['upload', 'skip', '--no-generate'],
      ['job', 'skip', '--no-generate'],
      ['mp4', 'skip', '--no-generate'],
    ]);
  }, 120_000);

  it('passes the node check for a workflow of core nodes and names an unknown type (through the CLI, --json)', async () => {
    const wf = join(dir, 'wf.api.json');
    writeFileSync(
      wf,
      JSON.stringify({ '1': { class_type: 'LoadImage', inputs: { image: 'x.png' } }, '2': { class_type: 'SteadyDancerNoSuchNode', inputs: {} }, '3': { class_type: 'EmptyLatentImage', inputs: {} } }),
    );
    const out: string[] = [];
    const errStream = { write: () => true, isTTY: false } as unknown as NodeJS.WritableStream;
    const code = await runCli(['smoke', '--url', comfy.url, '--workflow', wf, '--no-browser', '--no-generate', '--json'], { out: (s) => void out.push(s), err: errStream });
    expect(code).toBe(1);
    const r = JSON.parse(out.join('')) as SmokeResult;
    expect(step(r, 'nodes').reason).toBe('1 of 3 node types are not installed: SteadyDancerNoSuchNode');
  }, 120_000);

  it.skipIf(skipBrowser)(
    'loads a UI workflow in Chromium: pass with core nodes, fail naming an unknown node; screenshots saved',
    async () => {
      const good = join(dir, 'good.json');
      const bad = join(dir, 'bad.json');
      writeFileSync(good, JSON.stringify(uiGraph(['LoadImage', 'EmptyLatentImage'])));
      writeFileSync(bad, JSON.stringify(uiGraph(['LoadImage', 'SteadyDancerNoSuchNode'])));
      expect(uiNodeTypes(JSON.parse(readFileSync(bad, 'utf8')))).toEqual(['LoadImage', 'SteadyDancerNoSuchNode']);

      const ok = await runSmoke({ url: comfy.url, root: projectRoot(), uiWorkflow: good, screenshot: join(dir, 'good.png'), generate: false, chromium });
      const b = step(ok, 'browser');
      expect(b.status, b.reason).toBe('pass');
      expect(b.details!.loadedNodes).toBe(2);
      expect(readFileSync(join(dir, 'good.png')).subarray(1, 4).toString()).toBe('PNG');

      // the pinned frontend's own start-up errors are known-benign, each with its reason
      expect((b.details!.benignErrors as Array<{ reason: string }>).every((e) => e.reason.length > 60)).toBe(true);
      // the screenshot is fitted to the graph at a legible zoom
      expect((b.details!.view as { scale: number }).scale).toBeGreaterThanOrEqual(0.6);

      for (const [title, text] of [
        ['sd-test: page error', 'sd-test: a page error on purpose'],
        ['sd-test: toast', 'sd-test: an error toast on purpose'],
      ] as const) {
        const g = uiGraph(['LoadImage']);
        (g.nodes[0] as Record<string, unknown>).title = title;
        const f = join(dir, `${title.replace(/\W+/g, '-')}.json`);
        writeFileSync(f, JSON.stringify(g));
        const r = step(await runSmoke({ url: comfy.url, root: projectRoot(), uiWorkflow: f, screenshot: join(dir, 'err.png'), generate: false, chromium }), 'browser');
        expect(r.status, r.reason).toBe('fail');
        expect(r.reason).toContain(`the page reported 1 error(s) (page errors or error toasts): ${text}`);
      }

      const ko = await runSmoke({ url: comfy.url, root: projectRoot(), uiWorkflow: bad, screenshot: join(dir, 'bad.png'), generate: false, chromium });
      const k = step(ko, 'browser');
      expect(k.status, k.reason).toBe('fail');
      expect(k.details!.missing).toEqual(['SteadyDancerNoSuchNode']);
      expect(k.reason).toMatch(/node types the page does not know: SteadyDancerNoSuchNode/);
      // the frontend's own missing-nodes dialog is seen too
      expect(k.details!.dialog).toMatch(/Some Nodes Are Missing/);
      expect(existsSync(join(dir, 'bad.png'))).toBe(true);

      const none = await runSmoke({ url: comfy.url, root: projectRoot(), uiWorkflow: join(dir, 'absent.json'), screenshot: join(dir, 'none.png'), generate: false, chromium });
      expect(step(none, 'browser').status, step(none, 'browser').reason).toBe('skip');
      expect(step(none, 'browser').reason).toMatch(/page loaded in Chromium .* but the UI workflow was not checked: .*absent\.json does not exist/);
    },
    600_000,
  );

  it('reports an unreachable ComfyUI and skips what depends on it', async () => {
    const r = await runSmoke({ url: 'http://127.0.0.1:9', root: projectRoot(), generate: true });
    expect(step(r, 'ui').status).toBe('fail');
    expect(r.steps.slice(1).map((s) => [s.id, s.status, s.reason])).toEqual([
      ['nodes', 'skip', 'ComfyUI is not reachable'],
      ['browser', 'skip', 'ComfyUI is not reachable'],
      ['upload', 'skip', 'ComfyUI is not reachable'],
      ['job', 'skip', 'the inputs were not uploaded'],
      ['mp4', 'skip', 'no video came back from the job'],
    ]);
  });
});

const skipGen = skip || needs('smoke with a generated job (tiny models)', tinyModelsSkipReason());

describe.skipIf(skipGen)('smoke with a generated job on a real ComfyUI (tiny random weights)', () => {
  let comfy: NativeComfy;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sd-smoke-gen-'));
    const tiny = ensureTinyModels();
    comfy = await startTestComfy({ modelsDir: tiny.modelsDir, env: { STEADYDANCER_TEXT_CACHE: tiny.textCacheDir }, readyTimeoutMs: 240_000 });
  }, 600_000);
  afterAll(async () => {
    await comfy?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('uploads the samples, runs the filled workflow with progress, and checks the mp4 with ffprobe', async () => {
    const out = join(dir, 'smoke.mp4');
    const r = await runSmoke({ url: comfy.url, root: projectRoot(), browser: false, out, params: { width: 128, height: 128, frames: 8, steps: 2, seed: 3 } });
    expect(r.steps.map((s) => [s.id, s.status])).toEqual([
      ['ui', 'pass'],
      ['nodes', 'pass'],
      ['browser', 'skip'],
      ['upload', 'pass'],
      ['job', 'pass'],
      ['mp4', 'pass'],
    ]);
    const job = step(r, 'job');
    expect((job.details!.params as { frames: number }).frames).toBe(9); // 8 → 9 by the 4n+1 rule
    expect(job.details!.progressEvents as number).toBeGreaterThanOrEqual(2); // at least the 2 sampling steps
    expect(step(r, 'mp4').details).toMatchObject({ file: out, codec: 'h264', width: 128, height: 128, frames: 9 });
    expect(existsSync(out)).toBe(true);
  }, 600_000);
});
