import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { entryPath, fetchSource, resolveFrom, stageSources, verifySource, type LockedSource } from '../../../src/docker/sources.js';
import { runCli } from '../../../src/cli.js';

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', args, { cwd, encoding: 'utf8', env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' } }).trim();

let work: string;
let upstream: string;
let c1: string;
let c2: string;
let env: NodeJS.ProcessEnv;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'sd-sources-'));
  // A folder of mirrors in this project's layout: <owner>+<name>/repo
  upstream = join(work, 'mirrors', 'acme+Pack', 'repo');
  mkdirSync(upstream, { recursive: true });
  git(upstream, 'init', '-q');
  writeFileSync(join(upstream, 'a.txt'), 'one\n');
  git(upstream, 'add', '.');
  git(upstream, 'commit', '-qm', 'one');
  c1 = git(upstream, 'rev-parse', 'HEAD');
  writeFileSync(join(upstream, 'a.txt'), 'two\n');
  writeFileSync(join(upstream, 'requirements.txt'), 'numpy\n');
  git(upstream, 'add', '.');
  git(upstream, 'commit', '-qm', 'two');
  c2 = git(upstream, 'rev-parse', 'HEAD');
  env = { ...process.env, XDG_CACHE_HOME: join(work, 'cache') };
});

const src = (commit: string): LockedSource => ({ name: 'Pack', repo: 'https://github.com/acme/Pack.git', commit, kind: 'node' });

describe('source cache', () => {
  it('resolves --from as a repo or as a folder of mirrors', () => {
    expect(resolveFrom(upstream, src(c1))).toBe(upstream);
    expect(resolveFrom(join(work, 'mirrors'), src(c1))).toBe(upstream);
    expect(resolveFrom(join(work, 'nothing'), src(c1))).toBeUndefined();
  });

  it('fetches an older pinned commit from a mirror, verifies it, and is idempotent', async () => {
    const r = await fetchSource(src(c1), { from: join(work, 'mirrors'), env });
    expect(r.action).toBe('fetched');
    expect(r.path).toBe(join(work, 'cache', 'steadydancer', 'sources', `Pack@${c1}`));
    expect(readFileSync(join(r.path, 'a.txt'), 'utf8')).toBe('one\n');
    expect((await verifySource(src(c1), env)).status).toBe('ok');
    expect((await fetchSource(src(c1), { from: join(work, 'mirrors'), env })).action).toBe('cached');
  });

  it('a commit the origin lacks fails cleanly and leaves nothing under the final name', async () => {
    const missing = 'f'.repeat(40);
    const r = await fetchSource(src(missing), { from: upstream, env });
    expect(r.action).toBe('failed');
    expect(r.error).toMatch(/commit f{40} is not in/);
    expect(existsSync(entryPath(src(missing), env))).toBe(false);
  });

  it('verify: wrong HEAD, not a git checkout, missing and modified files', async () => {
    await fetchSource(src(c2), { from: upstream, env });
    const p = entryPath(src(c2), env);
    writeFileSync(join(p, 'a.txt'), 'tampered\n');
    rmSync(join(p, 'requirements.txt'));
    const v = await verifySource(src(c2), env);
    expect(v).toMatchObject({ status: 'ok', missingFiles: ['requirements.txt'], modifiedFiles: ['a.txt'] });
    git(p, 'checkout', '-q', '--', '.');
    git(p, 'checkout', '-q', '--detach', c1);
    expect(await verifySource(src(c2), env)).toMatchObject({ status: 'wrong-commit', head: c1 });
    rmSync(join(p, '.git'), { recursive: true });
    expect((await verifySource(src(c2), env)).status).toBe('not-git');
    expect((await verifySource(src('e'.repeat(40)), env)).status).toBe('absent');
  });

  it('stages verified entries without .git, with provenance; others are left to the build', async () => {
    const stage = join(work, 'stage');
    mkdirSync(join(stage, 'stale@x'), { recursive: true });
    const out = await stageSources([src(c1), src('e'.repeat(40))], stage, env);
    expect(out).toEqual([
      { name: 'Pack', commit: c1, from: 'cache', missingFiles: 0 },
      { name: 'Pack', commit: 'e'.repeat(40), from: 'clone', missingFiles: 0 },
    ]);
    expect(existsSync(join(stage, `Pack@${c1}`, 'a.txt'))).toBe(true);
    expect(existsSync(join(stage, `Pack@${c1}`, '.git'))).toBe(false);
    expect(existsSync(join(stage, 'stale@x'))).toBe(false);
    expect(JSON.parse(readFileSync(join(stage, `Pack@${c1}`, '.steadydancer-source.json'), 'utf8'))).toMatchObject({ commit: c1, from: 'cache' });
  });

  it('CLI: sources fetch with a lock of our own, list and verify (--json), unknown names exit 2', async () => {
    const lockFile = join(work, 'lock.json');
    writeFileSync(
      lockFile,
      JSON.stringify({ version: 1, comfyui: { name: 'Core', repo: 'https://github.com/acme/Pack.git', commit: c2 }, nodes: [{ name: 'Pack', repo: 'https://github.com/acme/Pack.git', commit: c1 }] }),
    );
    const outs: string[] = [];
    const io = { env, out: (t: string) => void outs.push(t), err: Object.assign(new (await import('node:stream')).PassThrough(), { isTTY: false }) };
    expect(await runCli(['sources', 'fetch', '--lock', lockFile, '--from', join(work, 'mirrors'), '--json'], io)).toBe(0);
    const fetched = JSON.parse(outs.pop()!) as { results: Array<{ name: string; action: string }> };
    expect(fetched.results.map((r) => r.name)).toEqual(['Core', 'Pack']);
    expect(await runCli(['sources', 'verify', '--lock', lockFile, '--require-all', '--json'], io)).toBe(0);
    const v = JSON.parse(outs.pop()!) as { ok: boolean; sources: Array<{ status: string }> };
    expect(v.ok).toBe(true);
    expect(await runCli(['sources', 'verify', 'Nope', '--lock', lockFile], io)).toBe(2);
    expect(await runCli(['sources', 'fetch', '--lock', lockFile, '--from', join(work, 'nowhere'), '--force'], io)).toBe(1);
  });

  it('CLI: a source the mirror folder lacks is a warning naming what the build leaves out; --require-all or an empty folder fail', async () => {
    const lockFile = join(work, 'lock-partial.json');
    writeFileSync(
      lockFile,
      JSON.stringify({
        version: 1,
        comfyui: { name: 'Core', repo: 'https://github.com/acme/Pack.git', commit: c2 },
        nodes: [{ name: 'Gone', repo: 'https://github.com/acme/Gone.git', commit: c1 }],
      }),
    );
    const outs: string[] = [];
    const errs = new (await import('node:stream')).PassThrough();
    const io = { env, out: (t: string) => void outs.push(t), err: Object.assign(errs, { isTTY: false }) };
    expect(await runCli(['sources', 'fetch', '--lock', lockFile, '--from', join(work, 'mirrors')], io)).toBe(0);
    const human = outs.join('');
    outs.length = 0;
    expect(human).toMatch(/WARN Gone@[0-9a-f]{12} absent: no git repository for Gone under /);
    expect(human).toContain('`steadydancer build --packs cached` builds without it');
    expect(await runCli(['sources', 'fetch', '--lock', lockFile, '--from', join(work, 'mirrors'), '--require-all', '--json'], io)).toBe(1);
    // the report, then the error (both JSON under --json)
    const docs = outs.splice(0).map((t) => JSON.parse(t) as Record<string, unknown>);
    const doc = docs.find((d) => 'results' in d) as { ok: boolean; results: Array<{ name: string; action: string }> };
    expect(docs.at(-1)).toMatchObject({ ok: false, error: { code: 'E_SOURCES_ABSENT' } });
    expect(doc.ok).toBe(false);
    expect(doc.results.find((r) => r.name === 'Gone')?.action).toBe('absent');
    // a folder that holds none of them is the wrong folder, not a partial mirror
    const empty = join(work, 'empty-mirrors');
    mkdirSync(empty, { recursive: true });
    expect(await runCli(['sources', 'fetch', 'Gone', '--lock', lockFile, '--from', empty], io)).toBe(1);
    const said = errs.read()?.toString() ?? '';
    expect(said).toContain('none of the sources asked for is there');
    expect(said).not.toContain('/work/.mirror');
  });
});
