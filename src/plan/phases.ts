/**
 * The six phases of `steadydancer run`, with the real implementations, in the plan's waves:
 *   1 doctor · 2 lint · 3 models ∥ deps-build · 4 build · 5 local-test
 * Decisions (so that `make run` on any machine says what it could and could not do):
 * - doctor FAIL (e.g. no GPU) fails that phase but blocks nothing: the later phases check what
 *   they need themselves (build the engine, local-test ComfyUI).
 * - models: when the Hub cannot be asked (network error per file, HF_HUB_OFFLINE), the phase
 *   FAILS with that reason rather than skipping: whether the weights can be had is this phase's
 *   whole question, and a machine that cannot answer it cannot run the model; nothing else
 *   waits for it (the build does not bake weights by default).
 * - deps-build checks the build's inputs (pinned sources in the cache, a base image, an engine);
 *   the Dockerfile's dependency stages themselves are built by the build phase (BuildKit
 *   caches them), so it fails only on what would make the build fail for certain.
 * - build: no engine → SKIP with the reason; no CUDA base locally → the stand-in base
 *   (local/base:bookworm) when present, else SKIP with the reason.
 * - local-test: smoke against the container when build passed, else against ComfyUI started
 *   natively from the source cache with --cpu; neither possible → SKIP with the reason.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { doctorHost } from '../system/doctor-host.js';
import { resolveModelsDir } from '../system/doctor.js';
import { hostVariant } from '../docker/manifest-bridge.js';
import { defaultBaseImage } from '../system/doctor-host.js';
import { lintRepository } from '../docker/lint-repo.js';
import { checkModels } from '../models/check.js';
import { hubConfig } from '../models/hub.js';
import { defaultManifestPath, loadManifest } from '../models/manifest.js';
import { loadLock, lockPath } from '../docker/lock.js';
import { listSources } from '../docker/sources.js';
import { connectEngine, engineBin, inspectImage, type Engine } from '../docker/engine.js';
import { runBuild, STANDIN_ARGS } from '../docker/build.js';
import { composeDown, composeUp } from '../docker/compose.js';
import { startNativeComfy } from '../comfy/native.js';
import { sourcesDir } from '../util/paths.js';
import type { Logger } from '../util/logger.js';
import type { PhaseDef, PhaseOutcome } from './engine.js';
import { runSmoke, type SmokeResult } from './smoke.js';

export interface RealPhaseOptions {
  root: string;
  env: NodeJS.ProcessEnv;
  logger: Logger;
  variant?: string;
  tag: string;
  engine?: string;
  /** Where build logs and smoke artefacts go. */
  reportDir: string;
  generate?: boolean;
  browser?: boolean;
  /** Workflow parameters for local-test's job (default: smoke's 512×512, ~30 frames). */
  params?: Record<string, unknown>;
}

export { PHASE_IDS } from './phase-ids.js';

const COMFYUI_NAME = 'ComfyUI';

function smokeOutcome(where: string, r: SmokeResult): PhaseOutcome {
  const bad = r.steps.filter((s) => s.status === 'fail');
  const skipped = r.steps.filter((s) => s.status === 'skip');
  const summary = r.steps.map((s) => `${s.id} ${s.status}`).join(', ');
  return bad.length
    ? { status: 'fail', reason: `${where}: ${bad.map((s) => `${s.id}: ${s.reason}`).join('; ')} [${summary}]`, details: r }
    : { status: 'pass', reason: `${where}: ${summary}${skipped.length ? ` (skipped: ${skipped.map((s) => `${s.id} — ${s.reason}`).join('; ')})` : ''}`, details: r };
}

/**
 * The environment Compose gets for local-test's container: the image built, and a host
 * MODELS_DIR as the models volume (STEADYDANCER_MODELS) unless that is set. MODELS_DIR itself is
 * emptied: the compose file passes it into the container, where a host path means nothing.
 */
export function containerEnv(env: NodeJS.ProcessEnv, tag: string, modelsDir: string | undefined): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, STEADYDANCER_IMAGE: tag };
  if (modelsDir && !env.STEADYDANCER_MODELS) out.STEADYDANCER_MODELS = modelsDir;
  if (modelsDir) out.MODELS_DIR = '';
  return out;
}

export function realPhases(o: RealPhaseOptions): PhaseDef[] {
  // The variant rule (src/models/variant.ts) once for the whole plan: doctor sizes the disk for
  // it and models checks its files.
  const variant = hostVariant(o.root, o.env, o.variant, resolveModelsDir(o.env, o.root));
  const bin = engineBin(o.engine, o.env);
  let engine: Engine | undefined;
  let engineError: string | undefined;
  const getEngine = async () => {
    if (engine || engineError) return engine;
    try {
      engine = await connectEngine(bin);
    } catch (e) {
      engineError = (e as Error).message;
    }
    return engine;
  };
  let buildBase: { standin: boolean; image: string } | undefined;
  // The pinned sources and their cache state (git checks of every checkout): once per run,
  // shared by deps-build and local-test.
  let sourcesOnce: ReturnType<typeof listSources> | undefined;
  const getSources = () => (sourcesOnce ??= (async () => listSources(loadLock(lockPath(o.root)), o.env))());

  return [
    {
      id: 'doctor', title: 'host preflight', wave: 1,
      run: async () => {
        const r = await doctorHost({ root: o.root, env: o.env, variant });
        const fails = r.checks.filter((c) => c.status === 'FAIL');
        const warns = r.checks.filter((c) => c.status === 'WARN');
        const details = { counts: r.counts, checks: r.checks.map((c) => ({ id: c.id, status: c.status, detail: c.detail })) };
        return fails.length
          ? { status: 'fail', reason: `${fails.length} check(s) failed: ${fails.map((c) => `${c.id} (${c.detail})`).join('; ')}`, details }
          : { status: 'pass', reason: `${r.counts.PASS} pass, ${warns.length} warn${warns.length ? `: ${warns.map((c) => c.id).join(', ')}` : ''}`, details };
      },
    },
    {
      id: 'lint', title: 'static checks', wave: 2,
      run: async () => {
        const r = await lintRepository({ root: o.root, env: o.env });
        const skipped = r.rules.filter((x) => x.status === 'skipped');
        const details = { errors: r.errors, warnings: r.warnings, findings: r.findings.slice(0, 50), skippedRules: skipped.map((x) => ({ id: x.id, reason: x.reason })) };
        const tailNote = skipped.length ? `; ${skipped.length} rule(s) skipped: ${skipped.map((x) => `${x.id} (${x.reason})`).join(', ')}` : '';
        return r.ok
          ? { status: 'pass', reason: `${r.rules.length - skipped.length} rules ran, 0 errors, ${r.warnings} warning(s)${tailNote}`, details }
          : { status: 'fail', reason: `${r.errors} error(s): ${r.findings.filter((f) => f.severity === 'error').slice(0, 3).map((f) => `${f.rule} ${f.file}: ${f.message}`).join('; ')}${tailNote}`, details };
      },
    },
    {
      id: 'models', title: 'model files on the Hub', wave: 3,
      run: async () => {
        const manifest = loadManifest(defaultManifestPath(o.env));
        const hub = hubConfig(o.env, { manifest, timeouts: { connectTimeoutMs: 10_000, headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000 } });
        const r = await checkModels({ manifest, variant, hub });
        const bad = r.rows.filter((x) => x.status !== 'ok');
        const details = { endpoint: r.endpoint, variant: r.requestedVariant, chosen: r.chosenVariant, fallback: r.fallback, rows: r.rows.map((x) => ({ target: x.target, status: x.status, message: x.message })) };
        if (r.ok) return { status: 'pass', reason: `variant ${r.chosenVariant}: all ${r.rows.length} files available on ${r.endpoint}${r.fallback ? ` (fallback from ${r.fallback.from}: ${r.fallback.reason})` : ''}`, details };
        const first = bad[0];
        if (r.exitCode === 3)
          return { status: 'fail', reason: `the Hub (${r.endpoint}) could not be asked about ${bad.length} of ${r.rows.length} file(s)${r.offline ? ' (HF_HUB_OFFLINE is set)' : ''}: ${first?.message ?? first?.status}`, details };
        return { status: 'fail', reason: `${bad.length} file(s) not available: ${bad.slice(0, 3).map((x) => `${x.target} ${x.status}`).join(', ')}`, details };
      },
    },
    {
      id: 'deps-build', title: 'build inputs: pinned sources, base image, engine', wave: 3, needs: ['lint'],
      run: async () => {
        const sources = await getSources();
        const comfy = sources.find((s) => s.kind === 'comfyui');
        const missing = sources.filter((s) => s.status !== 'ok' && s.kind !== 'reference');
        const details: Record<string, unknown> = { cache: sourcesDir(o.env), sources: sources.map((s) => ({ name: s.name, status: s.status })) };
        if (!comfy || comfy.status !== 'ok')
          return { status: 'fail', reason: `ComfyUI is not in the source cache at its pinned commit (${comfy?.status ?? 'not in the lock'}); seed it: steadydancer sources fetch ${COMFYUI_NAME}`, details };
        const eng = await getEngine();
        if (!eng) return { status: 'skip', reason: `no Docker engine: ${engineError}`, details };
        const cuda = defaultBaseImage(o.root);
        if (await inspectImage(eng, cuda)) buildBase = { standin: false, image: cuda };
        else if (await inspectImage(eng, STANDIN_ARGS.BASE_IMAGE)) buildBase = { standin: true, image: STANDIN_ARGS.BASE_IMAGE };
        details.base = buildBase ?? null;
        if (!buildBase)
          return { status: 'skip', reason: `neither the CUDA base ${cuda} nor the stand-in ${STANDIN_ARGS.BASE_IMAGE} is on the engine (no registry here; scripts/ensure-docker.sh --base makes the stand-in)`, details };
        const packNote = missing.length ? `; not in the cache, so left out of the build (--packs cached): ${missing.map((s) => s.name).join(', ')}` : '';
        return { status: 'pass', reason: `engine ${eng.serverVersion}, base ${buildBase.image}${buildBase.standin ? ' (stand-in: no CUDA base here)' : ''}, ${sources.length - missing.length}/${sources.length} sources cached${packNote}`, details };
      },
    },
    {
      id: 'build', title: 'image build', wave: 4, needs: ['deps-build'],
      run: async ({ signal }) => {
        const eng = await getEngine();
        if (!eng || !buildBase) return { status: 'skip', reason: eng ? 'no base image' : `no Docker engine: ${engineError}` };
        mkdirSync(o.reportDir, { recursive: true });
        const r = await runBuild({
          root: o.root, tag: o.tag, engineBin: eng.bin, standin: buildBase.standin, packs: 'cached',
          logPath: join(o.reportDir, 'build-full.log'), env: o.env, logger: o.logger, signal, progressIntervalMs: 60_000,
        });
        const details = { tag: r.tag, seconds: r.seconds, log: r.log, image: r.image, fallbacks: r.fallbacks, packs: r.packs, verification: r.verification, error: r.error };
        return r.ok
          ? { status: 'pass', reason: `${r.tag} built in ${r.seconds.toFixed(0)} s${r.image ? `, ${r.image.sizeGb.toFixed(1)} GB` : ''}${buildBase.standin ? ' on the stand-in base' : ''}`, details }
          : { status: 'fail', reason: `${r.error ?? 'build failed'}${r.hint ? ` (hint: ${r.hint})` : ''} (log ${r.log})`, details };
      },
    },
    {
      id: 'local-test', title: 'local test: smoke against ComfyUI', wave: 5, after: ['build'],
      run: async ({ results, signal }) => {
        const smokeOpts = {
          root: o.root, generate: o.generate, browser: o.browser, logger: o.logger, signal, env: o.env, params: o.params,
          screenshot: join(o.reportDir, 'smoke-ui.png'), out: join(o.reportDir, 'smoke.mp4'),
        };
        // MODELS_DIR (a host folder, e.g. the CPU fixtures' tiny models, with text_cache/ inside)
        // is the models volume of the container, or the native ComfyUI's models folder.
        const modelsDir = o.env.MODELS_DIR && existsSync(o.env.MODELS_DIR) ? o.env.MODELS_DIR : undefined;
        if (results.get('build')?.status === 'pass') {
          const env = containerEnv(o.env, o.tag, modelsDir);
          const up = await composeUp({ root: o.root, env, engine: bin, timeoutMs: 600_000, signal });
          try {
            return smokeOutcome(`container ${o.tag} (${up.url})`, await runSmoke({ ...smokeOpts, url: up.url }));
          } finally {
            await composeDown({ root: o.root, env, engine: bin }).catch((e: unknown) => o.logger.warn(`compose down: ${(e as Error).message}`));
          }
        }
        const sources = await getSources();
        const comfy = sources.find((s) => s.kind === 'comfyui');
        if (!comfy || comfy.status !== 'ok') return { status: 'skip', reason: `no image was built and ComfyUI is not in the source cache (${comfy?.status ?? 'not in the lock'})` };
        const python = o.env.STEADYDANCER_PYTHON ?? join(o.root, '.venv', 'bin', 'python');
        if (!existsSync(python)) return { status: 'skip', reason: `no image was built and there is no Python for a native ComfyUI (${python}; run make venv or set STEADYDANCER_PYTHON)` };
        const packs = [join(o.root, 'comfyui-steadydancer'), ...sources.filter((s) => s.kind === 'node' && s.status === 'ok').map((s) => s.path)];
        // the text cache with the models, as start.sh does in the image
        const textCache = o.env.STEADYDANCER_TEXT_CACHE ?? (modelsDir ? join(modelsDir, 'text_cache') : undefined);
        const native = await startNativeComfy({ source: comfy.path, python, packs, modelsDir, args: ['--cpu'], readyTimeoutMs: 300_000, signal, env: textCache ? { STEADYDANCER_TEXT_CACHE: textCache } : undefined });
        try {
          return smokeOutcome(`native ComfyUI --cpu from the source cache (${native.url}; build ${results.get('build')?.status ?? 'absent'}; models ${modelsDir ?? 'none: set MODELS_DIR'})`, await runSmoke({ ...smokeOpts, url: native.url }));
        } finally {
          await native.stop();
        }
      },
    },
  ];
}
