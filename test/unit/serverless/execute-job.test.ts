import { describe, expect, it } from 'vitest';
import { ComfyCrashed } from '../../../src/comfy/supervisor.js';
import { executeJob } from '../../../src/serverless/jobs.js';
import { memoryLogger } from '../../../src/util/logger.js';

describe('executeJob', () => {
  it('a handler error followed at once by a ComfyUI exit reports the exit (what the caller needs)', async () => {
    const crash = new AbortController();
    const outcome = await executeJob(
      async (_input, ctx) => {
        await ctx.ready(); // the job reached ComfyUI
        // the client sees the socket drop first, the supervisor the exit a moment later
        setTimeout(() => crash.abort(new ComfyCrashed('killed by SIGKILL')), 50);
        throw new Error('the ComfyUI WebSocket closed (code 1006) before the job finished');
      },
      { id: 'j1', input: {} },
      { logger: memoryLogger(), abort: crash.signal, abortSettleMs: 5000 },
    );
    expect(outcome.status).toBe('FAILED');
    expect(outcome.error).toMatch(/ComfyUI exited during the job \(killed by SIGKILL\)/);
  });

  it('a handler error with no abort following keeps the handler error', async () => {
    const crash = new AbortController();
    const outcome = await executeJob(
      async () => {
        throw new Error('video: has 60 frames; at most 40');
      },
      { id: 'j2', input: {} },
      { logger: memoryLogger(), abort: crash.signal, abortSettleMs: 20 },
    );
    expect(outcome).toMatchObject({ status: 'FAILED', error: 'video: has 60 frames; at most 40' });
  });
});
