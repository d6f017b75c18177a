import { describe, expect, it } from 'vitest';
import { runCli } from '../../../src/cli.js';
import { captureCli } from '../../helpers/cli.js';

const capture = () => captureCli({ PATH: process.env.PATH });

describe('steadydancer build: bad input is refused before any engine work', () => {
  it('--size-budget-gb must be a positive number', async () => {
    const c = capture();
    expect(await runCli(['build', '--size-budget-gb', 'lots'], c.io)).toBe(2);
    expect(c.err.join('')).toContain("option '--size-budget-gb <n>' argument 'lots' is invalid. expected a positive number of GB");
  });
  it("--variant must be one of docker/models.json's variants", async () => {
    const c = capture();
    expect(await runCli(['build', '--variant', 'fp4'], c.io)).toBe(2);
    expect(c.err.join('')).toContain("option '--variant <name>' argument 'fp4' is invalid. Allowed choices are fp8, fp16, gguf-q5_k_m, gguf-q6_k.");
  });
  it('--build-arg must be K=V and never a secret', async () => {
    const c = capture();
    expect(await runCli(['build', '--build-arg', 'oops'], c.io)).toBe(2);
    expect(c.err.join('')).toContain('--build-arg "oops" is not K=V');
    const d = capture();
    expect(await runCli(['build', '--build-arg', 'HF_TOKEN=hf_secretvalue', '--json'], d.io)).toBe(2);
    const j = JSON.parse(d.out.join('')) as { ok: boolean; error: { code: string; message: string } };
    expect(j.error.code).toBe('E_SECRET_ARG');
    expect(d.out.join('') + d.err.join('')).not.toContain('hf_secretvalue');
  });
  it('an unknown pack is a usage error listing the lock names', async () => {
    const c = capture();
    expect(await runCli(['build', '--packs', 'Nope', '--engine', '/nonexistent/docker'], c.io)).toBe(2);
    expect(c.err.join('')).toContain('error: unknown node pack(s): Nope');
    expect(c.err.join('')).toMatch(/hint: choose from: all, none, ComfyUI-WanVideoWrapper/);
  });
  it('no engine behind --engine: a clear error with the ensure-docker hint, no stack', async () => {
    const c = capture();
    expect(await runCli(['build', '--engine', '/nonexistent/docker'], c.io)).toBe(1);
    const text = c.err.join('');
    expect(text).toMatch(/error: no Docker engine answers through \/nonexistent\/docker/);
    expect(text).toMatch(/hint: start one with `scripts\/ensure-docker.sh`/);
    expect(text).not.toMatch(/\n\s+at /);
  });
});
