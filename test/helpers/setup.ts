import { join } from 'node:path';
// Keep secrets from the developer's environment out of every test process.
for (const k of ['HF_TOKEN', 'RUNPOD_API_KEY', 'RUNPOD_AI_API_KEY', 'BUCKET_ACCESS_KEY_ID', 'BUCKET_SECRET_ACCESS_KEY']) {
  delete process.env[k];
}

// ComfyUI started by the worker's supervisor logs to a file, not into vitest's output
// (src/runpod/comfy-process.ts); native ComfyUI (src/comfy/native.ts) always logs to its own file.
process.env.STEADYDANCER_COMFY_LOG ??= join(process.env.STEADYDANCER_TEST_RESULTS ?? join(process.cwd(), '.test-results'), 'comfyui.log');
// No ANSI colours in test output that is piped (make test's logs)
if (!process.stdout.isTTY) process.env.NO_COLOR ??= '1';
