import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { commands, runCli } from '../../src/cli.js';
import type { CommandSpec } from '../../src/commands/types.js';
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

  it("--version prints the package version (commander's own flag) and exits 0", async () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const c = capture();
    expect(await runCli(['--version'], c.io)).toBe(0);
    expect(c.out.join('').trim()).toBe(pkg.version);
  });

  it.each([
    [['models', 'check', '--frobnicate', '--json'], /unknown option '--frobnicate'/],
    [['up', '--timeout', 'soon', '--json'], /option '--timeout <s>' argument 'soon' is invalid\. expected a positive number of seconds/],
    [['generate', '--video', 'v.mp4', '--json'], /required option '--image <file\|url>' not specified/],
    [['up', '--cpu', '--gpu', '--json'], /option '--cpu' cannot be used with option '--gpu'/],
  ])("with --json, commander's usage error %j is one JSON document on stdout (exit 2)", async (argv, msg) => {
    const c = capture();
    expect(await runCli(argv, c.io)).toBe(2);
    const doc = JSON.parse(c.out.join('\n')) as { ok: boolean; error: { code: string; message: string } };
    expect(doc.ok).toBe(false);
    expect(doc.error.code).toBe('E_USAGE');
    expect(doc.error.message).toMatch(msg);
    expect(c.err.join('')).toMatch(msg); // and the human line on stderr, as without --json
  });

  it('typed parsers: bad numbers, ports, URLs and JSON are usage errors before the command runs', async () => {
    const cases: [string[], RegExp][] = [
      [['serve', '--port', '70000'], /option '--port <n>' argument '70000' is invalid\. expected a port number 0–65535/],
      [['models', 'download', '--jobs', '0', '--dest', '/nonexistent'], /option '--jobs <n>' argument '0' is invalid\. expected a positive integer/],
      [['models', 'download', '--retries', '1.5', '--dest', '/nonexistent'], /option '--retries <n>' argument '1.5' is invalid/],
      [['worker', '--ready-timeout', '-1'], /option '--ready-timeout <s>' argument '-1' is invalid/],
      [['doctor', '--min-docker-free-gb', 'lots'], /option '--min-docker-free-gb <n>' argument 'lots' is invalid/],
      [['lint', '--rule', ','], /option '--rule <ids>' argument ',' is invalid/],
    ];
    for (const [argv, msg] of cases) {
      const c = capture();
      expect(await runCli(argv, c.io), argv.join(' ')).toBe(2);
      expect(c.err.join(''), argv.join(' ')).toMatch(msg);
    }
  });

  it('smoke --url notaurl is a usage error, not a failed check', async () => {
    const c = capture();
    expect(await runCli(['smoke', '--url', 'notaurl', '--no-browser', '--no-generate'], c.io)).toBe(2);
    expect(c.err.join('')).toMatch(/option '--url <url>' argument 'notaurl' is invalid\. expected an http\(s\) URL/);
  });

  it("--variant offers the manifest's variants (commander choices; with --manifest, that manifest's)", async () => {
    const c = capture();
    expect(await runCli(['doctor', '--variant', 'fp4'], c.io)).toBe(2);
    expect(c.err.join('')).toContain("option '--variant <name>' argument 'fp4' is invalid. Allowed choices are fp8, fp16, gguf-q5_k_m, gguf-q6_k.");
    const d = capture();
    expect(await runCli(['models', 'check', '--variant', 'fp4', '--json'], d.io)).toBe(2);
    const doc = JSON.parse(d.out.join('\n')) as { error: { code: string; message: string; hint: string } };
    expect(doc.error).toMatchObject({ code: 'E_USAGE', message: '--variant fp4: unknown variant "fp4"', hint: 'choose one of: fp8, fp16, gguf-q5_k_m, gguf-q6_k' });
  });

  it('generate checks the job parameters with the job schema before any network call, naming every bad field', async () => {
    let requests = 0;
    const server = createServer((_req, res) => {
      requests++;
      res.writeHead(500).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const c = captureCli({ PATH: process.env.PATH, STEADYDANCER_API_URL: url });
      const code = await runCli(
        ['generate', '--image', 'docker/samples/reference.png', '--video', 'docker/samples/dance.mp4', '--set', 'frames=abc', '--set', 'width=100', '--params', '{"preset":"turbo"}', '--json'],
        c.io,
      );
      expect(code).toBe(2);
      const doc = JSON.parse(c.out.join('\n')) as { error: { code: string; message: string } };
      expect(doc.error.code).toBe('E_USAGE');
      expect(doc.error.message).toMatch(/frames: frames must be a number/);
      expect(doc.error.message).toMatch(/width: width must be a multiple of 16/);
      expect(doc.error.message).toMatch(/preset: /);
      expect(requests).toBe(0);
    } finally {
      server.close();
    }
  });

  it('defaults are shown one way: commander\'s "(default: …)"', async () => {
    const texts: string[] = [];
    const walk = async (specs: CommandSpec[], path: string[]): Promise<void> => {
      for (const s of specs) {
        const c = capture();
        await runCli([...path, s.name, '--help'], c.io);
        texts.push(c.out.join('\n'));
        if (s.subcommands) await walk(s.subcommands, [...path, s.name]);
      }
    };
    await walk(commands, []);
    const all = texts.join('\n');
    expect(all).toContain('(default: 8)'); // models check --jobs, from commander
    expect(all).not.toMatch(/\(default(?!:\s)/); // no "(default 8)" or "fp8 (default)" hand-written forms
    expect(all).not.toMatch(/\(default:\s+\$[A-Z_]+ or /); // nor a second wording of the same thing
  });
});
