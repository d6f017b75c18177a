/** The ComfyUI supervisor with real child processes (no ComfyUI needed for these cases). */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ComfySupervisor, ComfyCrashed } from '../../src/comfy/supervisor.js';
import { memoryLogger } from '../../src/util/logger.js';

describe('ComfySupervisor', () => {
  it('restarts a process that dies, aborts the crash signal with the reason, and gives up after too many crashes', async () => {
    const logger = memoryLogger();
    const sup = new ComfySupervisor({ command: [process.execPath, '-e', 'setTimeout(() => process.exit(3), 50)'], baseUrl: 'http://127.0.0.1:9', logger, restartDelayMs: 10, maxRestarts: 2 });
    const first = sup.crashSignal();
    const gaveUp = new Promise<void>((r) => sup.once('gave-up', () => r()));
    sup.start();
    await gaveUp;
    expect(first.aborted).toBe(true);
    expect(first.reason).toBeInstanceOf(ComfyCrashed);
    expect((first.reason as Error).message).toMatch(/ComfyUI exited during the job \(exit code 3\)/);
    expect(sup.gaveUp).toBe(true);
    expect(logger.lines.filter((l) => /ComfyUI started/.test(l))).toHaveLength(3);
    await expect(sup.waitReady(5_000)).rejects.toThrow(/keeps crashing/);
  });

  it('a bounded readiness wait names the URL and the time', async () => {
    const sup = new ComfySupervisor({ command: [process.execPath, '-e', 'setTimeout(() => {}, 60000)'], baseUrl: 'http://127.0.0.1:9', logger: memoryLogger() });
    sup.start();
    try {
      await expect(sup.waitReady(1_000)).rejects.toThrow(/ComfyUI at http:\/\/127\.0\.0\.1:9 did not answer \/system_stats within 1 s/);
    } finally {
      await sup.stop();
    }
    expect(sup.alive()).toBe(false);
  });

  it("with a log file, ComfyUI's output goes there (appended across restarts), not to the worker's own output", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sd-sup-log-'));
    try {
      const logFile = join(dir, 'logs', 'comfyui.log');
      const logger = memoryLogger();
      const sup = new ComfySupervisor({
        command: [process.execPath, '-e', 'console.log("to stdout"); console.error("to stderr"); setTimeout(() => process.exit(1), 20)'],
        baseUrl: 'http://127.0.0.1:9',
        logger,
        restartDelayMs: 10,
        maxRestarts: 1,
        logFile,
      });
      const gaveUp = new Promise<void>((r) => sup.once('gave-up', () => r()));
      sup.start();
      await gaveUp;
      const text = readFileSync(logFile, 'utf8');
      expect(text.match(/to stdout/g)).toHaveLength(2);
      expect(text.match(/to stderr/g)).toHaveLength(2);
      expect(logger.lines.some((l) => l.includes(`ComfyUI log: ${logFile}`))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
