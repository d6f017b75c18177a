import { existsSync } from 'node:fs';
import { emit, type Context } from '../util/context.js';
import { ActionableError } from '../util/errors.js';
import { loadLock, lockPath } from '../docker/lock.js';
import { fetchSource, listSources, pickSources, verifySource, type FetchResult, type SourceStatus } from '../docker/sources.js';
import { sourcesDir } from '../util/paths.js';

interface SourcesOpts {
  from?: string;
  force?: boolean;
  lock?: string;
  requireAll?: boolean;
}

function lockOf(opts: SourcesOpts) {
  return loadLock(opts.lock ?? lockPath());
}

const short = (c: string) => c.slice(0, 12);

export async function fetchCmd(opts: SourcesOpts, ctx: Context, names: string[]): Promise<number> {
  const lock = lockOf(opts);
  const picked = pickSources(lock, names.flat());
  if (opts.from && !existsSync(opts.from))
    throw new ActionableError(`--from ${opts.from}: no such file or folder`, { code: 'E_SOURCES_FROM', hint: 'give a local git repository or a folder of <owner>+<name>/repo mirrors' });
  const results: FetchResult[] = [];
  for (const s of picked) {
    const r = await fetchSource(s, { from: opts.from, env: ctx.env, logger: ctx.logger, force: opts.force });
    if (r.action === 'failed') ctx.logger.error(`${s.name}@${short(s.commit)}: ${r.error}`);
    results.push(r);
  }
  const failed = results.filter((r) => r.action === 'failed');
  // A mirror folder that lacks a source is not a failed fetch: the build leaves such packs out
  // (`build --packs cached`, named in its report); --require-all makes it an error.
  const absent = results.filter((r) => r.action === 'absent');
  // ...unless the mirrors hold none of them: then --from is the wrong folder
  const ok = failed.length === 0 && (!opts.requireAll || absent.length === 0) && absent.length < results.length;
  const mark = (r: FetchResult) => (r.action === 'failed' ? 'FAIL' : r.action === 'absent' ? 'WARN' : 'ok  ');
  emit(ctx, { ok, cache: sourcesDir(ctx.env), results }, (x) =>
    [
      ...x.results.map((r) => `${mark(r)} ${r.name}@${short(r.commit)} ${r.action}${r.from ? ` from ${r.from}` : ''}${r.error ? `: ${r.error}` : ''}`),
      ...(absent.length && ok
        ? [
            `not in ${opts.from}: ${absent.map((a) => a.name).join(', ')} — \`steadydancer build --packs cached\` builds without ${absent.length === 1 ? 'it' : 'them'}; fetch ${absent.length === 1 ? 'it' : 'them'} from the network or another mirror to include ${absent.length === 1 ? 'it' : 'them'}`,
          ]
        : []),
      `cache: ${x.cache}`,
    ].join('\n'),
  );
  if (failed.length) {
    throw new ActionableError(`${failed.length} source(s) not fetched: ${failed.map((f) => `${f.name} (${f.error?.split('\n')[0]})`).join(', ')}`, {
      code: 'E_SOURCES_FETCH',
      hint: opts.from
        ? `check that ${opts.from} holds a clone of each (a repository, or a folder of <owner>+<name>/repo mirrors) with the pinned commit`
        : 'check network access to the repositories, or seed from a local clone or a folder of mirrors with --from PATH',
    });
  }
  if (!ok) {
    throw new ActionableError(
      `${absent.length} source(s) not under ${opts.from}: ${absent.map((a) => a.name).join(', ')}${absent.length === results.length ? ' (none of the sources asked for is there)' : ' (--require-all)'}`,
      {
        code: 'E_SOURCES_ABSENT',
        hint: `fetch ${absent.map((a) => a.name).join(' ')} without --from (network) or from another mirror folder, or drop --require-all`,
      },
    );
  }
  return 0;
}

function statusLine(s: SourceStatus): string {
  const notes: string[] = [];
  if (s.head) notes.push(`HEAD ${short(s.head)}`);
  if (s.missingFiles.length) notes.push(`${s.missingFiles.length} tracked file(s) absent`);
  if (s.modifiedFiles.length) notes.push(`${s.modifiedFiles.length} modified`);
  return `${s.status.padEnd(12)} ${s.kind.padEnd(9)} ${s.name}@${short(s.commit)}${notes.length ? ` (${notes.join(', ')})` : ''}`;
}

export async function listCmd(opts: SourcesOpts, ctx: Context): Promise<number> {
  const rows = await listSources(lockOf(opts), ctx.env);
  emit(ctx, { cache: sourcesDir(ctx.env), sources: rows }, (x) => [...x.sources.map(statusLine), `cache: ${x.cache}`].join('\n'));
  return 0;
}

export async function verifyCmd(opts: SourcesOpts, ctx: Context, names: string[]): Promise<number> {
  const lock = lockOf(opts);
  const rows = await Promise.all(pickSources(lock, names.flat()).map((s) => verifySource(s, ctx.env)));
  const bad = rows.filter((r) => r.status === 'not-git' || r.status === 'wrong-commit' || r.modifiedFiles.length > 0);
  const absent = rows.filter((r) => r.status === 'absent');
  const ok = bad.length === 0 && (!opts.requireAll || absent.length === 0);
  emit(ctx, { ok, cache: sourcesDir(ctx.env), sources: rows }, (x) => [...x.sources.map(statusLine), `cache: ${x.cache}`].join('\n'));
  if (bad.length) {
    throw new ActionableError(`${bad.length} cached source(s) fail verification: ${bad.map((b) => `${b.name} (${b.status}${b.modifiedFiles.length ? ', modified files' : ''})`).join(', ')}`, {
      code: 'E_SOURCES_VERIFY',
      hint: 'refetch them: steadydancer sources fetch --force NAME',
    });
  }
  if (!ok) {
    throw new ActionableError(`${absent.length} source(s) not in the cache: ${absent.map((a) => a.name).join(', ')}`, {
      code: 'E_SOURCES_ABSENT',
      hint: 'steadydancer sources fetch (or --from PATH to seed from local mirrors)',
    });
  }
  return 0;
}
