/**
 * The browser check of `smoke` in Debian's Chromium against a page served here: a page whose
 * frontend never comes up is a failure naming the stage, after one more attempt; a page that
 * comes up on the second load passes, with the first error kept in the reason.
 * (The real ComfyUI frontend is driven in smoke-real-comfy.test.ts.)
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CHROMIUM, runSmoke } from '../../src/plan/smoke.js';
import { projectRoot } from '../../src/util/paths.js';
import { needs } from '../helpers/skips.js';

const chromium = process.env.CHROMIUM_PATH ?? DEFAULT_CHROMIUM;
const skip = needs('smoke browser check retry', existsSync(chromium) ? undefined : `Chromium is not at ${chromium} (scripts/ensure-tools.sh installs Debian's chromium)`);

// A stand-in for the frontend's app API, just what the check reads: window.app.graph,
// app.loadGraphData and LiteGraph's registered node types.
const APP = `<html><head><title>fake frontend</title><script>
window.LiteGraph = { registered_node_types: { LoadImage: {}, EmptyLatentImage: {} } };
window.app = { graph: { _nodes: [], clear() { this._nodes = []; } }, async loadGraphData(g) { this.graph._nodes = g.nodes.slice(); } };
</script></head><body>up</body></html>`;
const NO_APP = '<html><head><title>starting</title></head><body>not yet</body></html>';

describe.skipIf(skip)('smoke browser check: one more attempt when the browser fails', () => {
  let server: Server;
  let url: string;
  let pageLoads = 0;
  let appFromLoad = Infinity;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sd-browser-retry-'));
    writeFileSync(
      join(dir, 'ui.json'),
      JSON.stringify({
        nodes: [
          { id: 1, type: 'LoadImage' },
          { id: 2, type: 'EmptyLatentImage' },
        ],
        links: [],
      }),
    );
    server = createServer((req, res) => {
      if (req.url === '/system_stats')
        return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ system: { comfyui_version: 'stand-in' }, devices: [{ name: 'cpu', type: 'cpu' }] }));
      if (req.url === '/object_info') return res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      if (req.url === '/') {
        const ua = String(req.headers['user-agent'] ?? '');
        // fetch() from the ui step is not a page load; Chromium's requests are
        const browser = /Chrome/.test(ua);
        if (browser) pageLoads++;
        return res.writeHead(200, { 'content-type': 'text/html' }).end(browser && pageLoads >= appFromLoad ? APP : browser ? NO_APP : APP);
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const check = () => runSmoke({ url, root: projectRoot(), uiWorkflow: join(dir, 'ui.json'), screenshot: join(dir, 'shot.png'), generate: false, chromium, browserTimeoutMs: 4_000 });

  it('a frontend that never comes up: fail, naming the stage, after a second attempt', async () => {
    pageLoads = 0;
    appFromLoad = Infinity;
    const r = await check();
    const b = r.steps.find((s) => s.id === 'browser')!;
    expect(b.status).toBe('fail');
    expect(b.reason).toMatch(
      /^Chromium failed while waiting for the frontend \(window\.app, registered node types\): .*Timeout 4000ms.* \(and the first attempt: Chromium failed while waiting for the frontend/,
    );
    expect(pageLoads).toBe(2);
  }, 120_000);

  it('a frontend that comes up on the second load: pass, the first error kept', async () => {
    pageLoads = 0;
    appFromLoad = 2;
    const r = await check();
    const b = r.steps.find((s) => s.id === 'browser')!;
    expect(b.status, b.reason).toBe('pass');
    expect(b.reason).toMatch(
      /^ui\.json loaded: 2 nodes on the canvas, no missing node types, no missing-nodes dialog, no page errors \(screenshot .*shot\.png, not fitted: .*\) \(second attempt; the first: Chromium failed while waiting for the frontend/,
    );
    expect(b.details).toMatchObject({ loadedNodes: 2, missing: [], firstAttemptError: expect.stringMatching(/Timeout 4000ms/) });
    expect(existsSync(join(dir, 'shot.png'))).toBe(true);
  }, 120_000);
});
