/**
 * The build runner behind `steadydancer build`: stages the cached sources, runs a BuildKit
 * build of docker/Dockerfile with the engine's CLI, streams the full log to a file, shows
 * progress, watches the disk at the Docker root, rebuilds once without flash-attn when the
 * flash-attn step fails, checks the image size against a budget and verifies the image by
 * running it.
 */
import { createWriteStream, existsSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { execa } from 'execa';
import { ActionableError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { startDiskWatch, type DiskSample, type DiskThresholds, DEFAULT_THRESHOLDS } from '../system/disk.js';
import { BuildLogParser, type BuildFailure } from './buildlog.js';
import { connectEngine, inspectImage, runInImage, type Engine } from './engine.js';
import { loadLock, lockPath, selectPacks, type Lock, type NodePack } from './lock.js';
import { secretLikeName } from './rules/dockerfile.js';
import { stageSources, verifySource, type LockedSource, type StagedSource } from './sources.js';

export interface BuildOptions {
  root: string;
  tag: string;
  engineBin: string;
  dockerfile?: string;
  noCache?: boolean;
  variant?: string;
  bake?: boolean;
  /** Extra --build-arg K=V (later wins). */
  buildArgs?: Record<string, string>;
  /** all | none | cached | comma list. */
  packs?: string;
  logPath: string;
  sizeBudgetGb?: number;
  /** Stand-in base (no registry): BASE_IMAGE=local/base:bookworm, PYTHON_VERSION=3.11, PyPI torch. */
  standin?: boolean;
  /** Run the in-image verification (default true). */
  verify?: boolean;
  /** Rebuild once without flash-attn when its step fails (default true). */
  flashFallback?: boolean;
  env: NodeJS.ProcessEnv;
  logger: Logger;
  signal?: AbortSignal;
  /** Progress line cadence when not a TTY (default 30 s). */
  progressIntervalMs?: number;
  disk?: { intervalMs?: number; thresholds?: DiskThresholds; sample?: (p: string) => Promise<DiskSample> };
}

export interface Attempt {
  buildArgs: Record<string, string>;
  ok: boolean;
  seconds: number;
  steps: { total: number; cached: number; done: number };
  failure?: { kind: BuildFailure['kind']; step?: string; message: string };
}

export interface PackVerification {
  name: string;
  loaded: boolean;
  seconds?: number;
}

export interface Verification {
  ok: boolean;
  imageInfo?: Record<string, unknown>;
  comfyui: { ok: boolean; importFailed: string[]; packs: PackVerification[]; auxFailures: string[]; tail: string[] };
  toolkit: { ok: boolean; output: string };
  problems: string[];
}

export interface BuildReport {
  ok: boolean;
  tag: string;
  dockerfile: string;
  log: string;
  engine: { bin: string; version: string; rootDir: string };
  seconds: number;
  attempts: Attempt[];
  fallbacks: string[];
  packs: { selected: string[]; omitted: Array<{ name: string; commit: string; reason: string }> };
  sources: StagedSource[];
  image?: { id: string; sizeBytes: number; sizeGb: number; labels: Record<string, string> };
  sizeBudgetGb: number;
  withinBudget?: boolean;
  disk: { path: string; peakUsedPercent: number; warned: boolean; stopped: boolean };
  verification?: Verification;
  error?: string;
  /** ActionableError code when the build stopped (E_DISK_FULL, E_BUILD_FAILED, ...). */
  errorCode?: string;
  hint?: string;
}

export const STANDIN_ARGS = {
  BASE_IMAGE: 'local/base:bookworm',
  PYTHON_VERSION: '3.11',
  TORCH_INDEX_URL: 'https://pypi.org/simple',
  // the CUDA devel base of the SageAttention2 stage comes from a registry the stand-in host lacks
  ENABLE_SAGEATTN: 'false',
};

/** Parses repeated `K=V` flags; a malformed one is a usage error naming it. */
export function parseBuildArgs(list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(item);
    if (!m) throw new ActionableError(`--build-arg "${item}" is not K=V`, { code: 'E_USAGE', exitCode: 2, hint: 'e.g. --build-arg ENABLE_FLASH_ATTN=false' });
    if (secretLikeName(m[1]!)) {
      throw new ActionableError(`--build-arg ${m[1]} looks like a secret: build args end up in the image history`, {
        code: 'E_SECRET_ARG',
        exitCode: 2,
        hint: 'the Hugging Face token goes in HF_TOKEN (passed as a BuildKit secret), never as a build arg',
      });
    }
    out[m[1]!] = m[2]!;
  }
  return out;
}

/** Resolves --packs against the lock and the cache ("cached" = every pack the cache holds). */
export async function resolvePacks(lock: Lock, sel: string | undefined, env: NodeJS.ProcessEnv): Promise<{ selected: NodePack[]; omitted: Array<{ name: string; commit: string; reason: string }> }> {
  if ((sel ?? '').trim() === 'cached') {
    const selected: NodePack[] = [];
    const omitted: Array<{ name: string; commit: string; reason: string }> = [];
    for (const n of lock.nodes) {
      const v = await verifySource({ ...n, kind: 'node' }, env);
      if (v.status === 'ok') selected.push(n);
      else omitted.push({ name: n.name, commit: n.commit, reason: `not in the source cache (${v.status})` });
    }
    return { selected, omitted };
  }
  const r = selectPacks(lock, sel);
  return { selected: r.selected, omitted: r.omitted.map((n) => ({ name: n.name, commit: n.commit, reason: 'left out by --packs' })) };
}

export function composeBuildArgs(o: BuildOptions, packs: NodePack[], lock: Lock): Record<string, string> {
  const args: Record<string, string> = {};
  if (o.standin) Object.assign(args, STANDIN_ARGS);
  args.COMFYUI_REF = lock.comfyui.commit;
  args.NODE_PACKS = packs.length === lock.nodes.length ? 'all' : packs.length ? packs.map((p) => p.name).join(',') : 'none';
  if (o.variant) args.STEADYDANCER_VARIANT = o.variant;
  if (o.bake) args.BAKE_STEADYDANCER = 'true';
  Object.assign(args, o.buildArgs ?? {});
  return args;
}

/** Labels the toolkit adds on top of the Dockerfile's own: one per pack commit and the omissions. */
export function packLabels(lock: Lock, selected: NodePack[], omitted: Array<{ name: string; commit: string; reason: string }>): Record<string, string> {
  const labels: Record<string, string> = { 'org.steadydancer.comfyui': lock.comfyui.commit };
  for (const p of selected) labels[`org.steadydancer.pack.${p.name}`] = p.commit;
  labels['org.steadydancer.packs-omitted'] = omitted.map((o) => o.name).join(',') || 'none';
  return labels;
}

/** Parses the output of `main.py --quick-test-for-ci` (ComfyUI's custom node import report). */
export function parseComfyImports(output: string, expected: string[]): Verification['comfyui'] {
  const lines = output.split('\n');
  const packs = new Map<string, PackVerification>();
  const importFailed: string[] = [];
  const auxFailures: string[] = [];
  for (const l of lines) {
    const m = /^\s*(\d+(?:\.\d+)?) seconds( \(IMPORT FAILED\))?: (.+)$/.exec(l);
    if (m) {
      const name = m[3]!.trim().split('/').filter(Boolean).pop()!;
      const failed = Boolean(m[2]);
      packs.set(name, { name, loaded: !failed, seconds: Number(m[1]) });
      if (failed) importFailed.push(name);
    }
    // comfyui_controlnet_aux catches its own per-module errors and lists them instead.
    const aux = /Failed to import module (\S+) because (.*)$/.exec(l);
    if (aux) auxFailures.push(`${aux[1]}: ${aux[2]}`);
    // KJNodes likewise degrades feature groups it cannot import ("X nodes could not be imported").
    const kj = /^(\S+): (.+ nodes) could not be imported\..*Error: (.*)$/.exec(l);
    if (kj) auxFailures.push(`${kj[1]} ${kj[2]}: ${kj[3]}`);
  }
  for (const e of expected) if (!packs.has(e)) packs.set(e, { name: e, loaded: false });
  const list = expected.map((e) => packs.get(e)!);
  const ok = importFailed.length === 0 && list.every((p) => p.loaded);
  return { ok, importFailed, packs: list, auxFailures, tail: lines.filter(Boolean).slice(-15) };
}

export async function verifyImage(engine: Engine, tag: string, expectedPacks: string[], signal?: AbortSignal): Promise<Verification> {
  const problems: string[] = [];
  let imageInfo: Record<string, unknown> | undefined;
  const info = await runInImage(engine, tag, ['cat', '/opt/steadydancer/image.json'], { signal, timeoutMs: 120_000 });
  if (info.exitCode === 0) {
    try {
      imageInfo = JSON.parse(info.stdout) as Record<string, unknown>;
    } catch {
      problems.push('image.json is not JSON');
    }
  } else problems.push(`reading /opt/steadydancer/image.json failed: ${info.stderr.trim().split('\n').pop()}`);

  const quick = await runInImage(engine, tag, ['python', '/opt/ComfyUI/main.py', '--cpu', '--quick-test-for-ci', '--disable-auto-launch'], {
    signal,
    timeoutMs: 600_000,
  });
  const comfyui = parseComfyImports(`${quick.stdout}\n${quick.stderr}`, expectedPacks);
  if (quick.exitCode !== 0) {
    comfyui.ok = false;
    problems.push(`ComfyUI --quick-test-for-ci exited ${quick.exitCode}`);
  }
  if (comfyui.importFailed.length) problems.push(`IMPORT FAILED: ${comfyui.importFailed.join(', ')}`);
  const missing = comfyui.packs.filter((p) => !p.loaded && !comfyui.importFailed.includes(p.name)).map((p) => p.name);
  if (missing.length) problems.push(`not loaded by ComfyUI: ${missing.join(', ')}`);

  const tk = await runInImage(engine, tag, ['steadydancer', '--help'], { signal, timeoutMs: 120_000 });
  const toolkit = { ok: tk.exitCode === 0 && /steadydancer/.test(tk.stdout), output: (tk.stdout || tk.stderr).split('\n').slice(0, 3).join('\n') };
  if (!toolkit.ok) problems.push('`steadydancer --help` failed in the image');
  return { ok: problems.length === 0 && comfyui.ok && toolkit.ok, imageInfo, comfyui, toolkit, problems };
}

interface RunOutcome {
  ok: boolean;
  parser: BuildLogParser;
  stoppedForDisk?: string;
  /** The disk watch of this run: warned, stopped, peak use. */
  disk: { warned: boolean; stopped: boolean; peakUsedFraction: number };
}

async function runDockerBuild(
  o: BuildOptions,
  engine: Engine,
  dockerfile: string,
  args: Record<string, string>,
  labels: Record<string, string>,
  log: NodeJS.WritableStream,
  secretFile?: string,
): Promise<RunOutcome> {
  const argv = ['build', '--network', 'host', '--progress=plain', '-f', dockerfile, '-t', o.tag];
  if (o.noCache) argv.push('--no-cache');
  for (const [k, v] of Object.entries(args)) argv.push('--build-arg', `${k}=${v}`);
  for (const [k, v] of Object.entries(labels)) argv.push('--label', `${k}=${v}`);
  if (secretFile) argv.push('--secret', `id=hf_token,src=${secretFile}`);
  argv.push(o.root);
  log.write(`$ DOCKER_BUILDKIT=1 ${engine.bin} ${argv.join(' ')}\n`);

  const parser = new BuildLogParser();
  const child = execa(engine.bin, argv, {
    env: { ...o.env, DOCKER_BUILDKIT: '1', HF_TOKEN: '' },
    reject: false,
    all: true,
    buffer: false,
    cancelSignal: o.signal,
    forceKillAfterDelay: 10_000,
  });
  let stoppedForDisk: string | undefined;
  const watch = startDiskWatch({
    path: engine.rootDir,
    intervalMs: o.disk?.intervalMs ?? 5000,
    thresholds: o.disk?.thresholds ?? DEFAULT_THRESHOLDS,
    sample: o.disk?.sample,
    onEvent: (e) => {
      log.write(`[steadydancer build] ${e.message}\n`);
      if (e.kind === 'warn') o.logger.warn(e.message);
      else {
        stoppedForDisk = e.message;
        o.logger.error(e.message);
        child.kill('SIGINT'); // the docker client cancels the build cleanly on SIGINT
      }
    },
  });

  const started = Date.now();
  const tty = o.logger.isTTY;
  let lastPrint = 0;
  const show = (force = false) => {
    const { done, total, current } = parser.progress();
    const el = Math.round((Date.now() - started) / 1000);
    const last = parser.lastLine.replace(/^#\d+ (\d+\.\d+ )?/, '').slice(0, 100);
    const what = current ? `[${current.stage} ${current.index}/${current.stageTotal}]` : '';
    const text = `build: step ${done}/${total || '?'} ${what} ${el}s — ${last}`;
    if (tty) process.stderr.write(`\r\x1b[K${text.slice(0, (process.stderr.columns ?? 120) - 1)}`);
    else if (force || Date.now() - lastPrint >= (o.progressIntervalMs ?? 30_000)) {
      lastPrint = Date.now();
      o.logger.line(text);
    }
  };
  const ticker = setInterval(() => show(), tty ? 500 : 1000);
  let buf = '';
  child.all?.on('data', (chunk: Buffer) => {
    log.write(chunk);
    buf += chunk.toString('utf8');
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    for (const p of parts) parser.feed(p);
  });
  const res = await child;
  if (buf) parser.feed(buf);
  clearInterval(ticker);
  watch.stop();
  if (tty) process.stderr.write('\r\x1b[K');
  show(true);
  return { ok: res.exitCode === 0 && !stoppedForDisk, parser, stoppedForDisk, disk: watch.state };
}

export async function runBuild(o: BuildOptions): Promise<BuildReport> {
  const started = Date.now();
  const root = resolve(o.root);
  const dockerfile = o.dockerfile ?? join(root, 'docker', 'Dockerfile');
  const lock = loadLock(lockPath(root));
  const { selected, omitted } = await resolvePacks(lock, o.packs, o.env);
  const engine = await connectEngine(o.engineBin, o.signal);
  const stageDir = join(root, '.build', 'sources');
  const toStage: LockedSource[] = [{ ...lock.comfyui, kind: 'comfyui' }, ...selected.map((n) => ({ name: n.name, repo: n.repo, commit: n.commit, kind: 'node' as const }))];
  const staged = await stageSources(toStage, stageDir, o.env);
  for (const s of staged) {
    if (s.from === 'clone') o.logger.warn(`${s.name}@${s.commit.slice(0, 12)} is not in the source cache: the build clones it (needs network to its repo)`);
    else if (s.missingFiles) o.logger.info(`${s.name}: from the cache, ${s.missingFiles} tracked file(s) absent there (large media)`);
  }
  for (const om of omitted) o.logger.warn(`node pack ${om.name} left out: ${om.reason}`);

  const args = composeBuildArgs(o, selected, lock);
  const labels = packLabels(lock, selected, omitted);
  const sizeBudgetGb = o.sizeBudgetGb ?? 50;
  mkdirSync(dirname(resolve(o.logPath)), { recursive: true });
  const log = createWriteStream(o.logPath, { flags: 'w' });

  // HF token only as a BuildKit secret file (0600, removed afterwards); never an arg.
  let secretDir: string | undefined;
  let secretFile: string | undefined;
  if (o.env.HF_TOKEN) {
    secretDir = mkdtempSync(join(tmpdir(), 'sd-secret-'));
    secretFile = join(secretDir, 'hf_token');
    writeFileSync(secretFile, o.env.HF_TOKEN, { mode: 0o600 });
  }

  const report: BuildReport = {
    ok: false,
    tag: o.tag,
    dockerfile,
    log: resolve(o.logPath),
    engine: { bin: engine.bin, version: engine.serverVersion, rootDir: engine.rootDir },
    seconds: 0,
    attempts: [],
    fallbacks: [],
    packs: { selected: selected.map((p) => p.name), omitted },
    sources: staged,
    sizeBudgetGb,
    disk: { path: engine.rootDir, peakUsedPercent: 0, warned: false, stopped: false },
  };
  const previous = await inspectImage(engine, o.tag);
  try {
    let attemptArgs = { ...args };
    for (let attempt = 1; attempt <= 2; attempt++) {
      const t0 = Date.now();
      o.logger.info(`building ${o.tag} (attempt ${attempt}; log: ${o.logPath})`);
      const out = await runDockerBuild(o, engine, dockerfile, attemptArgs, labels, log, secretFile);
      report.disk = {
        path: engine.rootDir,
        peakUsedPercent: Math.round(out.disk.peakUsedFraction * 1000) / 10,
        warned: report.disk.warned || out.disk.warned,
        stopped: out.disk.stopped,
      };
      const failure = out.ok ? undefined : out.parser.failure();
      report.attempts.push({
        buildArgs: attemptArgs,
        ok: out.ok,
        seconds: Math.round((Date.now() - t0) / 100) / 10,
        steps: out.parser.counts(),
        failure: out.ok
          ? undefined
          : out.stoppedForDisk
            ? { kind: 'disk-full', message: out.stoppedForDisk }
            : { kind: failure?.kind ?? 'other', step: failure?.step?.name, message: failure?.message ?? 'build failed' },
      });
      if (out.ok) break;
      if (o.signal?.aborted) throw new ActionableError('build cancelled', { code: 'E_CANCELLED', exitCode: 130 });
      if (out.stoppedForDisk) {
        throw new ActionableError(out.stoppedForDisk, {
          code: 'E_DISK_FULL',
          hint: `free space at ${engine.rootDir}: \`${engine.bin} builder prune -f\`, \`${engine.bin} image prune -f\`, or remove old tags`,
        });
      }
      const canFallback = (o.flashFallback ?? true) && attempt === 1 && failure?.kind === 'flash-attn' && attemptArgs.ENABLE_FLASH_ATTN !== 'false';
      if (canFallback) {
        const msg = `flash-attn step failed (${failure.message.slice(0, 160)}): rebuilding once with ENABLE_FLASH_ATTN=false`;
        o.logger.warn(msg);
        report.fallbacks.push(msg);
        log.write(`[steadydancer build] ${msg}\n`);
        attemptArgs = { ...attemptArgs, ENABLE_FLASH_ATTN: 'false', FLASH_ATTN_REQUIRED: 'false' };
        continue;
      }
      // the step's last lines, less npm's upgrade notices
      const tail =
        failure?.step?.tail
          .filter((l) => !/^npm notice\b/.test(l.trim()))
          .slice(-8)
          .join('\n') ?? '';
      throw new ActionableError(
        `build failed${failure?.step ? ` at [${failure.step.stage} ${failure.step.index}/${failure.step.stageTotal}]` : ''}: ${failure?.message ?? 'see the log'}${tail ? `\n${tail}` : ''}`,
        {
          code: failure?.kind === 'network' ? 'E_BUILD_NETWORK' : 'E_BUILD_FAILED',
          hint: `full log: ${resolve(o.logPath)}`,
        },
      );
    }

    const img = await inspectImage(engine, o.tag);
    if (!img) throw new ActionableError(`the build finished but ${o.tag} is not in the engine`, { code: 'E_BUILD_FAILED' });
    report.image = { id: img.id, sizeBytes: img.sizeBytes, sizeGb: Math.round(img.sizeBytes / 1e7) / 100, labels: img.labels };
    report.withinBudget = img.sizeBytes <= sizeBudgetGb * 1e9;
    if (o.verify ?? true) {
      o.logger.info('verifying the image (image.json, ComfyUI --quick-test-for-ci, toolkit)');
      report.verification = await verifyImage(engine, o.tag, selected.map((p) => p.name).concat(existsPack(root) ? ['comfyui-steadydancer'] : []), o.signal);
    }
    const found = verifiedLabels(report.verification?.imageInfo);
    if (found) {
      // What the image can actually use (known only after the build): a metadata-only rebuild
      // (FROM the image + LABEL) adds it as labels without touching any layer.
      const relabeled = await addLabels(engine, o.tag, found, o.env);
      if (relabeled) report.image = { ...report.image, id: relabeled.id, labels: relabeled.labels };
    }
    // Keep the number of heavy images small: the image this tag pointed to before, once
    // untagged, is removed (never forced: an image a container still uses stays).
    for (const oldId of new Set([previous?.id, img.id].filter((x): x is string => Boolean(x) && x !== report.image?.id))) {
      const still = await inspectImage(engine, oldId);
      if (still && !(await isTagged(engine, oldId))) await execa(engine.bin, ['image', 'rm', oldId], { reject: false });
    }
    report.ok = Boolean(report.withinBudget) && (report.verification?.ok ?? true);
    if (!report.withinBudget) report.error = `image is ${report.image.sizeGb} GB, over the ${sizeBudgetGb} GB budget`;
    else if (report.verification && !report.verification.ok) report.error = `verification failed: ${report.verification.problems.join('; ')}`;
  } catch (err) {
    report.error = err instanceof Error ? err.message : String(err);
    if (!(err instanceof ActionableError)) throw err;
    report.errorCode = err.code;
    report.hint = err.hint;
  } finally {
    report.seconds = Math.round((Date.now() - started) / 100) / 10;
    await new Promise<void>((r) => log.end(r));
    if (secretDir) rmSync(secretDir, { recursive: true, force: true });
  }
  return report;
}

/**
 * The attention labels from what the image verification found in the image (image.json's
 * `attention`: the backends that import there), never from what the build was asked for: a
 * flash-attn wheel that could not be had leaves ENABLE_FLASH_ATTN=true but no flash_attn. The
 * build arguments stay visible as the Dockerfile's `*.requested` labels. Undefined when there is
 * no image.json to go by (verification off or failed to read it): then no such label is set.
 */
export function verifiedLabels(imageInfo: Record<string, unknown> | undefined): Record<string, string> | undefined {
  const att = (imageInfo as { attention?: unknown } | undefined)?.attention;
  if (!att || typeof att !== 'object' || Array.isArray(att)) return undefined;
  const a = att as Record<string, unknown>;
  const usable = (k: string) => a[k] !== undefined && a[k] !== null && a[k] !== false && a[k] !== '';
  const backends = Object.keys(a).filter(usable);
  return {
    'org.steadydancer.attention': backends.join(',') || 'none',
    'org.steadydancer.flash-attn': String(usable('flash_attn')),
    'org.steadydancer.sageattn': String(usable('sageattention')),
    'org.steadydancer.fa3': String(usable('fa3')),
    'org.steadydancer.xformers': String(usable('xformers')),
  };
}

function existsPack(root: string): boolean {
  return existsSync(join(root, 'comfyui-steadydancer', '__init__.py'));
}

async function isTagged(engine: Engine, id: string): Promise<boolean> {
  const res = await execa(engine.bin, ['image', 'inspect', '--format', '{{len .RepoTags}}', id], { reject: false });
  return res.exitCode === 0 && String(res.stdout).trim() !== '0';
}

/** Adds labels to an existing image by a metadata-only build (no layer changes). */
export async function addLabels(engine: Engine, tag: string, labels: Record<string, string>, env: NodeJS.ProcessEnv) {
  const args = ['build', '-q', '-t', tag, ...Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]), '-'];
  const res = await execa(engine.bin, args, { input: `FROM ${tag}\n`, reject: false, env: { ...env, DOCKER_BUILDKIT: '1' } });
  if (res.exitCode !== 0) return undefined;
  return inspectImage(engine, tag);
}
