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
 * - the CPU plan (no GPU, no --strict; or no Hub): with no MODELS_DIR given, local-test uses the
 *   embedded default, the tiny random-weight model set (src/models/tiny.ts, made or reused) and
 *   a small job (TINY_JOB), so the run ends with a real mp4 from the real workflow; the report
 *   says that the video comes from random weights.
 * - What this host lacks (a GPU, a Docker engine, a base image, the Hub, Chromium) marks the
 *   outcome `environment`: the engine reports it as WARN (environment) in the CPU plan.
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
import { ensureTinyModels, TINY_JOB, TINY_MODELS_NOTE } from '../models/tiny.js';
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
  /** Workflow parameters for local-test's job (default: smoke's 512×512, ~30 frames; the CPU plan's TINY_JOB). */
  params?: Record<string, unknown>;
  /** The CPU plan: no GPU here (and no --strict); see the module comment. */
  cpuPlan?: boolean;
  /** Notes for the report's reader; local-test adds the random-weights note when it used the tiny set. */
  notes?: string[];
}

export { PHASE_IDS } from './phase-ids.js';

const COMFYUI_NAME = 'ComfyUI';

function smokeOutcome(where: string, r: SmokeResult, extra: { lines?: string[]; next?: string[] } = {}): PhaseOutcome {
  const bad = r.steps.filter((s) => s.status === 'fail');
  const skipped = r.steps.filter((s) => s.status === 'skip');
  const summary = r.steps.map((s) => `${s.id} ${s.status}`).join(', ');
  const lines = [...(extra.lines ?? []), ...r.steps.map((s) => `${s.status.toUpperCase()} ${s.title}: ${s.reason}`)];
  const next = [...(extra.next ?? [])];
  for (const s of bad) if (s.environment) next.push(`${s.title}: ${s.environment}`);
  // only steps failed for want of a host tool (Chromium): an environment limit
  const environment = bad.length > 0 && bad.every((s) => s.environment);
  return bad.length
    ? { status: 'fail', reason: `${where}: ${bad.map((s) => `${s.id}: ${s.reason}`).join('; ')} [${summary}]`, details: r, lines, next, environment }
    : { status: 'pass', reason: `${where}: ${summary}${skipped.length ? ` (skipped: ${skipped.map((s) => `${s.id} — ${s.reason}`).join('; ')})` : ''}`, details: r, lines, next };
}

const GPU_NEXT = 'For a real video: run on a GPU host (a RunPod GPU pod or serverless endpoint with this image, README "Serverless API"), where `make run` uses the real model files.';
const ENGINE_NEXT = 'To build and test the image here: a Docker engine (as root, scripts/ensure-docker.sh --base installs docker.io, starts dockerd and makes the stand-in base).';

/**
 * The environment Compose gets for local-test's container: the image built, and a host
 * MODELS_DIR as the models volume (STEADYDANCER_MODELS) unless that is set. MODELS_DIR itself is
 * emptied: the compose file passes it into the container, where a host path means nothing.
 * ComfyUI's output folder is the run's own (outputDir, under the report), not the checkout's
 * data/output, unless STEADYDANCER_OUTPUT is set.
 */
export function containerEnv(env: NodeJS.ProcessEnv, tag: string, modelsDir: string | undefined, outputDir?: string): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, STEADYDANCER_IMAGE: tag };
  if (outputDir && !env.STEADYDANCER_OUTPUT) out.STEADYDANCER_OUTPUT = outputDir;
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
      id: 'doctor',
      title: 'host preflight',
      wave: 1,
      run: async () => {
        const r = await doctorHost({ root: o.root, env: o.env, variant });
        const fails = r.checks.filter((c) => c.status === 'FAIL');
        const warns = r.checks.filter((c) => c.status === 'WARN');
        const details = { counts: r.counts, checks: r.checks.map((c) => ({ id: c.id, status: c.status, detail: c.detail, impact: c.impact })) };
        // one line a check: what was found, and what it means for the later phases
        const lines = r.checks.map((c) => `${c.status} ${c.title}: ${c.detail} — ${c.impact}`);
        const next: string[] = [];
        if (fails.some((c) => c.id.startsWith('gpu.'))) next.push(GPU_NEXT);
        if (fails.some((c) => c.id.startsWith('docker.'))) next.push(ENGINE_NEXT);
        for (const c of fails) if (!c.id.startsWith('gpu.') && !c.id.startsWith('docker.')) next.push(`${c.title}: ${c.impact}`);
        // every doctor check is about this host: a failure is an environment limit
        return fails.length
          ? { status: 'fail', reason: `${fails.length} check(s) failed: ${fails.map((c) => `${c.id} (${c.detail})`).join('; ')}`, details, lines, next, environment: true }
          : { status: 'pass', reason: `${r.counts.PASS} pass, ${warns.length} warn${warns.length ? `: ${warns.map((c) => c.id).join(', ')}` : ''}`, details, lines };
      },
    },
    {
      id: 'lint',
      title: 'static checks',
      wave: 2,
      run: async () => {
        const r = await lintRepository({ root: o.root, env: o.env });
        const skipped = r.rules.filter((x) => x.status === 'skipped');
        const details = { errors: r.errors, warnings: r.warnings, findings: r.findings.slice(0, 50), skippedRules: skipped.map((x) => ({ id: x.id, reason: x.reason })) };
        const tailNote = skipped.length ? `; ${skipped.length} rule(s) skipped: ${skipped.map((x) => `${x.id} (${x.reason})`).join(', ')}` : '';
        const lines = [
          ...r.findings.slice(0, 30).map((f) => `${f.severity.toUpperCase()} ${f.rule} ${f.file}: ${f.message}`),
          ...(r.findings.length > 30 ? [`… and ${r.findings.length - 30} more (steadydancer lint lists them all)`] : []),
          ...skipped.map((x) => `SKIP rule ${x.id}: ${x.reason}`),
        ];
        if (!lines.length) lines.push(`all ${r.rules.length} rules ran and found nothing`);
        return r.ok
          ? { status: 'pass', reason: `${r.rules.length - skipped.length} rules ran, 0 errors, ${r.warnings} warning(s)${tailNote}`, details, lines }
          : {
              status: 'fail',
              reason: `${r.errors} error(s): ${r.findings
                .filter((f) => f.severity === 'error')
                .slice(0, 3)
                .map((f) => `${f.rule} ${f.file}: ${f.message}`)
                .join('; ')}${tailNote}`,
              details,
              lines,
              next: ['Fix the lint errors listed under "lint" (`steadydancer lint` shows each with its rule).'],
            };
      },
    },
    {
      id: 'models',
      title: 'model files on the Hub',
      wave: 3,
      run: async () => {
        const manifest = loadManifest(defaultManifestPath(o.env));
        const hub = hubConfig(o.env, { manifest, timeouts: { connectTimeoutMs: 10_000, headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000 } });
        const r = await checkModels({ manifest, variant, hub });
        const bad = r.rows.filter((x) => x.status !== 'ok');
        const details = {
          endpoint: r.endpoint,
          variant: r.requestedVariant,
          chosen: r.chosenVariant,
          fallback: r.fallback,
          rows: r.rows.map((x) => ({ target: x.target, status: x.status, message: x.message })),
        };
        const lines = r.rows.map((x) => `${x.status === 'ok' ? 'PASS' : 'FAIL'} ${x.target}: ${x.status}${x.message ? ` — ${x.message}` : ''}`);
        if (r.ok)
          return {
            status: 'pass',
            reason: `variant ${r.chosenVariant}: all ${r.rows.length} files available on ${r.endpoint}${r.fallback ? ` (fallback from ${r.fallback.from}: ${r.fallback.reason})` : ''}`,
            details,
            lines,
          };
        const first = bad[0];
        if (r.exitCode === 3)
          return {
            status: 'fail',
            environment: true,
            details,
            lines,
            reason: `the Hub (${r.endpoint}) could not be asked about ${bad.length} of ${r.rows.length} file(s)${r.offline ? ' (HF_HUB_OFFLINE is set)' : ''}: ${first?.message ?? first?.status}`,
            next: [`The model files could not be checked from here: on a host that reaches ${r.endpoint} (or with HF_ENDPOINT set to a mirror), \`steadydancer models check\` asks again.`],
          };
        return {
          status: 'fail',
          reason: `${bad.length} file(s) not available: ${bad
            .slice(0, 3)
            .map((x) => `${x.target} ${x.status}`)
            .join(', ')}`,
          details,
          lines,
          next: ['Some model files are missing or gated on the Hub: see the models lines; a gated file needs HF_TOKEN with access to it.'],
        };
      },
    },
    {
      id: 'deps-build',
      title: 'build inputs: pinned sources, base image, engine',
      wave: 3,
      needs: ['lint'],
      run: async () => {
        const sources = await getSources();
        const comfy = sources.find((s) => s.kind === 'comfyui');
        const missing = sources.filter((s) => s.status !== 'ok' && s.kind !== 'reference');
        const details: Record<string, unknown> = { cache: sourcesDir(o.env), sources: sources.map((s) => ({ name: s.name, status: s.status })) };
        const lines = sources.map((s) => `${s.status === 'ok' ? 'PASS' : s.kind === 'reference' ? 'SKIP' : 'WARN'} source ${s.name}@${s.commit.slice(0, 12)} (${s.kind}): ${s.status}`);
        if (!comfy || comfy.status !== 'ok')
          return {
            status: 'fail',
            reason: `ComfyUI is not in the source cache at its pinned commit (${comfy?.status ?? 'not in the lock'}); seed it: steadydancer sources fetch ${COMFYUI_NAME}`,
            details,
            lines,
            next: [`Seed the source cache: \`steadydancer sources fetch ${COMFYUI_NAME}\` (or --from a folder of git mirrors).`],
          };
        const eng = await getEngine();
        if (!eng) return { status: 'skip', reason: `no Docker engine: ${engineError}`, details, lines, environment: true, next: [ENGINE_NEXT] };
        const cuda = defaultBaseImage(o.root);
        if (await inspectImage(eng, cuda)) buildBase = { standin: false, image: cuda };
        else if (await inspectImage(eng, STANDIN_ARGS.BASE_IMAGE)) buildBase = { standin: true, image: STANDIN_ARGS.BASE_IMAGE };
        details.base = buildBase ?? null;
        lines.push(
          `${buildBase ? 'PASS' : 'WARN'} base image: ${buildBase ? buildBase.image + (buildBase.standin ? ' (the stand-in: no CUDA base here)' : '') : `neither ${cuda} nor ${STANDIN_ARGS.BASE_IMAGE}`}`,
        );
        if (!buildBase)
          return {
            status: 'skip',
            environment: true,
            details,
            lines,
            reason: `neither the CUDA base ${cuda} nor the stand-in ${STANDIN_ARGS.BASE_IMAGE} is on the engine (no registry here; scripts/ensure-docker.sh --base makes the stand-in)`,
            next: ['Make a base image: `docker pull` the CUDA base where a registry is reachable, or scripts/ensure-docker.sh --base for the stand-in.'],
          };
        const packNote = missing.length ? `; not in the cache, so left out of the build (--packs cached): ${missing.map((s) => s.name).join(', ')}` : '';
        return {
          status: 'pass',
          reason: `engine ${eng.serverVersion}, base ${buildBase.image}${buildBase.standin ? ' (stand-in: no CUDA base here)' : ''}, ${sources.length - missing.length}/${sources.length} sources cached${packNote}`,
          details,
          lines,
        };
      },
    },
    {
      id: 'build',
      title: 'image build',
      wave: 4,
      needs: ['deps-build'],
      run: async ({ signal }) => {
        const eng = await getEngine();
        if (!eng || !buildBase) return { status: 'skip', environment: true, reason: eng ? 'no base image' : `no Docker engine: ${engineError}` };
        mkdirSync(o.reportDir, { recursive: true });
        const r = await runBuild({
          root: o.root,
          tag: o.tag,
          engineBin: eng.bin,
          standin: buildBase.standin,
          packs: 'cached',
          logPath: join(o.reportDir, 'build-full.log'),
          env: o.env,
          logger: o.logger,
          signal,
          progressIntervalMs: 60_000,
        });
        const details = { tag: r.tag, seconds: r.seconds, log: r.log, image: r.image, fallbacks: r.fallbacks, packs: r.packs, verification: r.verification, error: r.error };
        const lines = [
          ...r.fallbacks.map((f) => `WARN ${f}`),
          ...(r.image ? [`PASS image ${r.tag}: ${r.image.sizeGb.toFixed(1)} GB${r.withinBudget === false ? ' (over the size budget)' : ''}`] : []),
          ...(r.verification
            ? [`${r.verification.ok ? 'PASS' : 'FAIL'} verification: ${r.verification.ok ? 'image.json, ComfyUI quick test and the toolkit answer' : r.verification.problems.join('; ')}`]
            : []),
          `log: ${r.log}`,
        ];
        return r.ok
          ? {
              status: 'pass',
              reason: `${r.tag} built in ${r.seconds.toFixed(0)} s${r.image ? `, ${r.image.sizeGb.toFixed(1)} GB` : ''}${buildBase.standin ? ' on the stand-in base' : ''}`,
              details,
              lines,
            }
          : { status: 'fail', reason: `${r.error ?? 'build failed'}${r.hint ? ` (hint: ${r.hint})` : ''} (log ${r.log})`, details, lines, next: [`The image build failed: its log is ${r.log}.`] };
      },
    },
    {
      id: 'local-test',
      title: 'local test: smoke against ComfyUI',
      wave: 5,
      after: ['build'],
      run: async ({ results, signal }) => {
        // MODELS_DIR (a host folder, e.g. the CPU fixtures' tiny models, with text_cache/ inside)
        // is the models volume of the container, or the native ComfyUI's models folder.
        let modelsDir = o.env.MODELS_DIR && existsSync(o.env.MODELS_DIR) ? o.env.MODELS_DIR : undefined;
        let params = o.params;
        const head: string[] = [];
        const next: string[] = [];
        // The embedded default: no models given, and this host cannot run the real ones (no GPU)
        // or cannot have them (the Hub could not be asked).
        const noHub = results.get('models')?.environment === true;
        const sources0 = await getSources();
        if (!modelsDir && (o.cpuPlan || noHub) && o.generate !== false) {
          const comfySrc = sources0.find((s) => s.kind === 'comfyui');
          const official = sources0.find((s) => s.kind === 'reference' && s.name === 'SteadyDancer');
          const python = o.env.STEADYDANCER_PYTHON ?? join(o.root, '.venv', 'bin', 'python');
          if (comfySrc?.status !== 'ok' || official?.status !== 'ok')
            return {
              status: 'fail',
              reason: `the embedded default (tiny random-weight models) is made from the pinned ComfyUI and SteadyDancer sources, and ${[comfySrc, official]
                .filter((s) => s?.status !== 'ok')
                .map((s) => s?.name ?? '?')
                .join(' and ')} are not in the source cache`,
              next: ['Seed the source cache: `steadydancer sources fetch` (or --from a folder of git mirrors).'],
            };
          o.logger.info('local-test: no GPU or no Hub and no MODELS_DIR: using the embedded default, the tiny random-weight model set');
          const tiny = await ensureTinyModels({ root: o.root, python, comfyui: comfySrc.path, official: official.path, env: o.env, signal, onLine: (l) => o.logger.debug?.(`tiny models: ${l}`) });
          modelsDir = tiny.modelsDir;
          params = { ...TINY_JOB, ...(o.params ?? {}) };
          head.push(
            `WARN models: the embedded default, the tiny random-weight set ${tiny.reused ? 'reused from' : 'made in'} ${tiny.modelsDir} (${o.cpuPlan ? 'no GPU here' : 'the Hub could not be asked'}); job ${params.width}×${params.height}, ${params.frames} frames, ${params.steps} steps`,
          );
          o.notes?.push(TINY_MODELS_NOTE);
          next.push(GPU_NEXT);
        }
        const smokeOpts = {
          root: o.root,
          generate: o.generate,
          browser: o.browser,
          logger: o.logger,
          signal,
          env: o.env,
          params,
          screenshot: join(o.reportDir, 'smoke-ui.png'),
          out: join(o.reportDir, 'smoke.mp4'),
        };
        const tinyNote = head.length ? ' (RANDOM WEIGHTS: the video is noise)' : '';
        if (results.get('build')?.status === 'pass') {
          const env = containerEnv(o.env, o.tag, modelsDir, join(o.reportDir, 'comfyui-output'));
          mkdirSync(join(o.reportDir, 'comfyui-output'), { recursive: true });
          const up = await composeUp({ root: o.root, env, engine: bin, timeoutMs: 600_000, signal });
          try {
            return smokeOutcome(`container ${o.tag} (${up.url})${tinyNote}`, await runSmoke({ ...smokeOpts, url: up.url }), { lines: head, next });
          } finally {
            await composeDown({ root: o.root, env, engine: bin }).catch((e: unknown) => o.logger.warn(`compose down: ${(e as Error).message}`));
          }
        }
        const sources = sources0;
        const comfy = sources.find((s) => s.kind === 'comfyui');
        if (!comfy || comfy.status !== 'ok')
          return {
            status: 'skip',
            reason: `no image was built and ComfyUI is not in the source cache (${comfy?.status ?? 'not in the lock'})`,
            next: ['Seed the source cache: `steadydancer sources fetch` (or --from a folder of git mirrors).'],
          };
        const python = o.env.STEADYDANCER_PYTHON ?? join(o.root, '.venv', 'bin', 'python');
        if (!existsSync(python)) return { status: 'skip', reason: `no image was built and there is no Python for a native ComfyUI (${python}; run make venv or set STEADYDANCER_PYTHON)` };
        const packs = [join(o.root, 'comfyui-steadydancer'), ...sources.filter((s) => s.kind === 'node' && s.status === 'ok').map((s) => s.path)];
        // the text cache with the models, as start.sh does in the image
        const textCache = o.env.STEADYDANCER_TEXT_CACHE ?? (modelsDir ? join(modelsDir, 'text_cache') : undefined);
        const native = await startNativeComfy({
          source: comfy.path,
          python,
          packs,
          modelsDir,
          args: ['--cpu'],
          readyTimeoutMs: 300_000,
          signal,
          env: textCache ? { STEADYDANCER_TEXT_CACHE: textCache } : undefined,
        });
        try {
          return smokeOutcome(
            `native ComfyUI --cpu from the source cache (${native.url}; build ${results.get('build')?.status ?? 'absent'}; models ${modelsDir ?? 'none: set MODELS_DIR'})${tinyNote}`,
            await runSmoke({ ...smokeOpts, url: native.url }),
            { lines: head, next },
          );
        } finally {
          await native.stop();
        }
      },
    },
  ];
}
