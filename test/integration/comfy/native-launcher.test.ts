/**
 * startNativeComfy on the project's one ComfyUI launcher (src/comfy/supervisor.ts, no restarts,
 * output captured): a stand-in "checkout" whose main.py is a tiny HTTP server answering
 * /system_stats (what the readiness wait polls), or dies at start.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startNativeComfy } from '../../../src/comfy/native.js';
import { needs } from '../../helpers/skips.js';
import { testPython } from '../../helpers/sources.js';

const skip = needs('native ComfyUI launcher', testPython() ? undefined : 'no Python venv (.venv or STEADYDANCER_PYTHON)');
const src = mkdtempSync(join(tmpdir(), 'sd-fake-checkout-'));
writeFileSync(
  join(src, 'main.py'),
  `import http.server, json, os, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
print("fake ComfyUI starting", flush=True)
if os.environ.get("FAKE_DIE"):
    print("Traceback: the fake was told to die", file=sys.stderr, flush=True)
    sys.exit(3)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"system": {"os": "fake"}, "devices": []}).encode()
        self.send_response(200 if self.path == "/system_stats" else 404)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
`,
);
afterAll(() => rmSync(src, { recursive: true, force: true }));

describe.skipIf(skip)('startNativeComfy', () => {
  it('starts, is ready, captures the output, and stop() ends the process', async () => {
    const c = await startNativeComfy({ source: src, python: testPython()!, readyTimeoutMs: 30_000 });
    const pid = c.supervisor.pid!;
    expect((await fetch(`${c.url}/system_stats`)).status).toBe(200);
    expect(c.logTail()).toMatch(/fake ComfyUI starting/);
    await c.stop();
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it('a ComfyUI that dies at start fails at once with its exit and the end of its log', async () => {
    await expect(startNativeComfy({ source: src, python: testPython()!, env: { FAKE_DIE: '1' }, readyTimeoutMs: 60_000 })).rejects.toThrow(/exit code 3[\s\S]*the fake was told to die/);
  });
});
