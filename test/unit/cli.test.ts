import { describe, expect, it } from 'vitest';
import { commands, runCli } from '../../src/cli.js';
import { captureCli } from '../helpers/cli.js';

const capture = () => captureCli({});

describe('cli', () => {
  it('prints help listing every command and exits 0', async () => {
    const c = capture();
    const code = await runCli(['--help'], c.io);
    expect(code).toBe(0);
    const text = c.out.join('\n');
    for (const spec of commands) expect(text).toContain(spec.name);
  });

  it('rejects an unknown command with exit code 2 and says so', async () => {
    const c = capture();
    const code = await runCli(['frobnicate'], c.io);
    expect(code).toBe(2);
    expect(c.err.join('')).toMatch(/unknown command 'frobnicate'/);
  });

  it('every command module loads and exports a function', async () => {
    const walk = async (specs: typeof commands): Promise<void> => {
      for (const s of specs) {
        if (s.load) expect(typeof (await s.load()).default).toBe('function');
        if (s.subcommands) await walk(s.subcommands);
      }
    };
    await walk(commands);
  });
});
