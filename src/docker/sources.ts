/**
 * The content-addressed source cache: $XDG_CACHE_HOME/steadydancer/sources/<name>@<commit>, one
 * plain git checkout per pinned source of docker/custom-nodes.lock.json, HEAD verified against
 * the commit. `fetch` clones from the repo URL or seeds from a local repository or a folder of
 * mirrors (--from); `list` and `verify` report; `stageSources` copies entries (without .git)
 * into the build context for the Dockerfile.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, cpSync } from 'node:fs';
import { basename, join } from 'node:path';
import { execa } from 'execa';
import { ActionableError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { sourcesDir } from '../util/paths.js';
import { allSources, type Lock, type Source } from './lock.js';

export type SourceKind = 'comfyui' | 'node' | 'reference';
export type LockedSource = Source & { kind: SourceKind };

export function entryName(s: Source): string {
  return `${s.name}@${s.commit}`;
}

export function entryPath(s: Source, env: NodeJS.ProcessEnv = process.env): string {
  return join(sourcesDir(env), entryName(s));
}

export type VerifyStatus = 'ok' | 'absent' | 'not-git' | 'wrong-commit';

export interface SourceStatus {
  name: string;
  kind: SourceKind;
  commit: string;
  repo: string;
  path: string;
  status: VerifyStatus;
  /** HEAD when it differs from the pinned commit. */
  head?: string;
  /** Tracked files missing from the checkout (e.g. large media left out of a mirror). */
  missingFiles: string[];
  /** Tracked files whose content differs from the commit. */
  modifiedFiles: string[];
}

async function git(args: string[], cwd?: string) {
  return execa('git', args, { cwd, reject: false, env: { GIT_TERMINAL_PROMPT: '0' } });
}

/** Checks one cache entry: a git checkout whose HEAD is the pinned commit. */
export async function verifySource(s: LockedSource, env: NodeJS.ProcessEnv = process.env): Promise<SourceStatus> {
  const path = entryPath(s, env);
  const base: SourceStatus = { name: s.name, kind: s.kind, commit: s.commit, repo: s.repo, path, status: 'absent', missingFiles: [], modifiedFiles: [] };
  if (!existsSync(path)) return base;
  const head = await git(['rev-parse', 'HEAD'], path);
  if (head.exitCode !== 0 || !existsSync(join(path, '.git'))) return { ...base, status: 'not-git' };
  const h = String(head.stdout).trim();
  if (h !== s.commit) return { ...base, status: 'wrong-commit', head: h };
  const st = await git(['status', '--porcelain', '--untracked-files=no'], path);
  const missing: string[] = [];
  const modified: string[] = [];
  for (const l of String(st.stdout).split('\n')) {
    if (!l.trim()) continue;
    const code = l.slice(0, 2);
    const file = l.slice(3);
    if (code.includes('D')) missing.push(file);
    else modified.push(file);
  }
  return { ...base, status: 'ok', missingFiles: missing, modifiedFiles: modified };
}

export async function listSources(lock: Lock, env: NodeJS.ProcessEnv = process.env): Promise<SourceStatus[]> {
  return Promise.all(allSources(lock).map((s) => verifySource(s, env)));
}

/**
 * Where to clone a source from when seeding with --from PATH: PATH itself when it is a git
 * repository (work tree or bare), else a mirror inside the folder PATH named after the repo:
 * <owner>+<name>/repo (this project's mirror layout), <owner>+<name>, <name>, <name>.git.
 */
export function resolveFrom(from: string, s: Source): string | undefined {
  if (!existsSync(from)) return undefined;
  const isRepo = (p: string) => existsSync(join(p, '.git')) || (existsSync(join(p, 'HEAD')) && existsSync(join(p, 'objects')));
  if (isRepo(from)) return from;
  const m = /[/:]([^/:]+)\/([^/]+?)(?:\.git)?\/?$/.exec(s.repo);
  const owner = m?.[1];
  const repoName = m?.[2] ?? s.name;
  const candidates = [
    owner ? join(from, `${owner}+${repoName}`, 'repo') : '',
    owner ? join(from, `${owner}+${repoName}`) : '',
    owner ? join(from, owner, repoName) : '',
    join(from, repoName),
    join(from, `${repoName}.git`),
    join(from, s.name),
  ].filter(Boolean);
  return candidates.find((c) => existsSync(c) && statSync(c).isDirectory() && isRepo(c));
}

export interface FetchResult {
  name: string;
  commit: string;
  path: string;
  /** absent: `--from` has no repository for it (nothing was tried); failed: a clone/checkout failed. */
  action: 'cached' | 'fetched' | 'absent' | 'failed';
  from?: string;
  error?: string;
}

/**
 * Puts one source into the cache: nothing to do when the entry verifies; else clone (from
 * --from or the repo URL) into a temporary folder, check out the commit, verify HEAD and move
 * it into place (a half-done fetch never sits under the final name).
 */
export async function fetchSource(s: LockedSource, opts: { from?: string; env?: NodeJS.ProcessEnv; logger?: Logger; force?: boolean } = {}): Promise<FetchResult> {
  const env = opts.env ?? process.env;
  const path = entryPath(s, env);
  const cur = await verifySource(s, env);
  if (cur.status === 'ok' && !opts.force) return { name: s.name, commit: s.commit, path, action: 'cached' };
  let origin = s.repo;
  if (opts.from) {
    const f = resolveFrom(opts.from, s);
    if (!f) return { name: s.name, commit: s.commit, path, action: 'absent', error: `no git repository for ${s.name} under ${opts.from}` };
    origin = f;
  }
  mkdirSync(sourcesDir(env), { recursive: true });
  const tmp = `${path}.part-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  opts.logger?.info(`fetching ${s.name}@${s.commit.slice(0, 12)} from ${origin}`);
  const fail = (error: string): FetchResult => {
    rmSync(tmp, { recursive: true, force: true });
    return { name: s.name, commit: s.commit, path, action: 'failed', from: origin, error };
  };
  const clone = await git(['clone', '--quiet', '--no-checkout', origin, tmp]);
  if (clone.exitCode !== 0) return fail(`git clone failed: ${lastLine(clone.stderr)}`);
  let co = await git(['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', s.commit], tmp);
  if (co.exitCode !== 0) {
    // A shallow or partial origin may lack the commit in its default refs: fetch it by id.
    await git(['fetch', '--quiet', 'origin', s.commit], tmp);
    co = await git(['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', s.commit], tmp);
    if (co.exitCode !== 0) return fail(`commit ${s.commit} is not in ${origin}: ${lastLine(co.stderr)}`);
  }
  const head = String((await git(['rev-parse', 'HEAD'], tmp)).stdout).trim();
  if (head !== s.commit) return fail(`HEAD is ${head} after checkout, expected ${s.commit}`);
  rmSync(path, { recursive: true, force: true });
  renameSync(tmp, path);
  return { name: s.name, commit: s.commit, path, action: 'fetched', from: origin };
}

function lastLine(text: unknown): string {
  return (
    String(text ?? '')
      .trim()
      .split('\n')
      .filter(Boolean)
      .slice(-1)[0] ?? ''
  );
}

/** Select lock sources by name (all when names is empty); unknown names are a usage error. */
export function pickSources(lock: Lock, names: string[]): LockedSource[] {
  const all = allSources(lock);
  if (!names.length) return all;
  const unknown = names.filter((n) => !all.some((s) => s.name === n));
  if (unknown.length) {
    throw new ActionableError(`unknown source(s): ${unknown.join(', ')}`, {
      code: 'E_USAGE',
      exitCode: 2,
      hint: `the lock names: ${all.map((s) => s.name).join(', ')}`,
    });
  }
  return all.filter((s) => names.includes(s.name));
}

export interface StagedSource {
  name: string;
  commit: string;
  /** 'cache' when copied from the cache; 'clone' when the build will clone it. */
  from: 'cache' | 'clone';
  missingFiles: number;
}

/**
 * Copies the verified cache entries of `sources` into <stageDir>/<name>@<commit> (no .git),
 * each with a .steadydancer-source.json, and removes anything else under stageDir. Sources not
 * in the cache (or not verifying) are left to the build, which clones them.
 */
export async function stageSources(sources: LockedSource[], stageDir: string, env: NodeJS.ProcessEnv = process.env): Promise<StagedSource[]> {
  mkdirSync(stageDir, { recursive: true });
  const wanted = new Set(sources.map(entryName));
  for (const e of readdirSync(stageDir)) if (!wanted.has(e)) rmSync(join(stageDir, e), { recursive: true, force: true });
  const out: StagedSource[] = [];
  for (const s of sources) {
    const v = await verifySource(s, env);
    const dest = join(stageDir, entryName(s));
    if (v.status !== 'ok') {
      rmSync(dest, { recursive: true, force: true });
      out.push({ name: s.name, commit: s.commit, from: 'clone', missingFiles: 0 });
      continue;
    }
    // Already staged at this commit: leave it, so the build context (and BuildKit's transfer
    // of it) stays unchanged between builds.
    const meta = join(dest, '.steadydancer-source.json');
    if (existsSync(meta)) {
      try {
        if ((JSON.parse(readFileSync(meta, 'utf8')) as { commit?: string }).commit === s.commit) {
          out.push({ name: s.name, commit: s.commit, from: 'cache', missingFiles: v.missingFiles.length });
          continue;
        }
      } catch {
        // unreadable provenance: restage below
      }
    }
    rmSync(dest, { recursive: true, force: true });
    cpSync(v.path, dest, { recursive: true, verbatimSymlinks: true, filter: (src) => basename(src) !== '.git' });
    writeFileSync(join(dest, '.steadydancer-source.json'), JSON.stringify({ name: s.name, repo: s.repo, commit: s.commit, from: 'cache', missing: v.missingFiles }, null, 2) + '\n');
    out.push({ name: s.name, commit: s.commit, from: 'cache', missingFiles: v.missingFiles.length });
  }
  return out;
}
