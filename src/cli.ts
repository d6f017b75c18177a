#!/usr/bin/env node
/**
 * The command table of `steadydancer`. Only declarations live here: each entry lazily imports
 * its command module, whose default export does the work and returns an exit code.
 */
import { Command, CommanderError } from 'commander';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { CommandSpec, CommandMain } from './commands/types.js';
import type { Context } from './util/context.js';
import { ActionableError, ExitError, errorMessage } from './util/errors.js';
import { createLogger, registerEnvSecrets, redactText } from './util/logger.js';

export const commands: CommandSpec[] = [
  // Each issue's commands are added here as they land: doctor, lint, sources, build, models,
  // up, down, smoke, run, generate, worker, serve.
  { name: 'version', summary: 'print the toolkit version', load: () => import('./commands/version.js') },
  {
    name: 'generate',
    summary: 'submit a dance job (reference image + driving video) to the local API or a RunPod endpoint and write the mp4',
    options: [
      ['--image <file|url>', 'reference image of the person (PNG, JPEG or WebP; a path or an https URL)'],
      ['--video <file|url>', 'driving dance video (a path or an https URL)'],
      ['--endpoint <local|id|url>', 'local (the local API), a RunPod endpoint id, or a base URL', 'local'],
      ['--out <file>', 'where to write the mp4', 'steadydancer.mp4'],
      ['--params <json>', 'workflow parameters as a JSON object (width, height, frames, fps, steps, cfg, seed, variant, prompt, pose…)'],
      ['--set <key=value...>', 'one workflow parameter (repeatable), e.g. --set frames=33'],
      ['--seed <n>', 'seed (default: random; the one used is reported)'],
      ['--poll-ms <ms>', 'status polling interval', '1000'],
    ],
    load: () => import('./commands/generate.js'),
  },
  {
    name: 'worker',
    summary: 'the RunPod serverless worker (the image entry in serverless mode): takes jobs, runs them in ComfyUI',
    args: ['[comfy...]'],
    options: [
      ['--comfy-url <url>', 'ComfyUI base URL', 'http://127.0.0.1:8188'],
      ['--ready-timeout <s>', 'longest wait for ComfyUI to be ready (start and after a crash)', '600'],
      ['--work-dir <dir>', 'scratch folder for job inputs'],
    ],
    load: () => import('./commands/worker.js'),
  },
  {
    name: 'serve',
    summary: "the local API with RunPod's routes (/run, /runsync, /status, /stream, /cancel, /health)",
    args: ['[comfy...]'],
    options: [
      ['--host <addr>', 'address to listen on', '127.0.0.1'],
      ['--port <n>', 'port to listen on', '8000'],
      ['--comfy-url <url>', 'ComfyUI base URL', 'http://127.0.0.1:8188'],
      ['--ready-timeout <s>', 'longest wait for ComfyUI to be ready before each job', '600'],
      ['--work-dir <dir>', 'scratch folder for job inputs'],
    ],
    load: () => import('./commands/serve.js'),
  },
  {
    name: 'doctor',
    summary: 'phase 1: host preflight (GPU, driver/CUDA, Docker, BuildKit, Compose, disk, base image)',
    options: [
      ['--models-dir <dir>', 'where models go (default: $MODELS_DIR, /runpod-volume/models, /workspace/models, ./models)'],
      ['--variant <name>', 'model variant to size the models disk for (default: $STEADYDANCER_VARIANT or fp8)'],
      ['--models-size-gb <n>', "the variant's total size in GB (default: from docker/models.json)"],
      ['--base-image <image>', 'base image to look for (default: BASE_IMAGE in docker/Dockerfile)'],
      ['--min-docker-free-gb <n>', 'free space wanted at the Docker root', '20'],
      ['--record <file>', "write every probe's command output to FILE (a test fixture of this host)"],
    ],
    load: () => import('./commands/doctor.js'),
  },
  {
    name: 'lint',
    summary: 'phase 2: static checks of the Dockerfile, compose, node lock, scripts and workflows',
    args: ['[dir]'],
    options: [
      ['--no-external', 'skip checks that run other programs (docker compose config, shellcheck)'],
      ['--rule <ids>', 'only these rule ids (comma list)'],
    ],
    load: () => import('./commands/lint.js'),
  },
  {
    name: 'sources',
    summary: 'pinned upstream sources in the content-addressed cache (fetch | list | verify)',
    subcommands: [
      {
        name: 'fetch',
        summary: 'clone the lock\'s sources into the cache at their pinned commits (all, or the names given)',
        args: ['[names...]'],
        options: [
          ['--from <path>', 'seed from a local git repository or a folder of mirrors instead of the network'],
          ['--force', 'refetch even when the cache entry verifies'],
          ['--lock <file>', 'lock file (default docker/custom-nodes.lock.json)'],
        ],
        load: () => import('./commands/sources/fetch.js'),
      },
      {
        name: 'list',
        summary: 'every source of the lock and its cache state',
        options: [['--lock <file>', 'lock file (default docker/custom-nodes.lock.json)']],
        load: () => import('./commands/sources/list.js'),
      },
      {
        name: 'verify',
        summary: 'check that cached sources are git checkouts at their pinned commits',
        args: ['[names...]'],
        options: [
          ['--require-all', 'also fail when a source is not in the cache'],
          ['--lock <file>', 'lock file (default docker/custom-nodes.lock.json)'],
        ],
        load: () => import('./commands/sources/verify.js'),
      },
    ],
  },
  {
    name: 'build',
    summary: 'build docker/Dockerfile on the Docker engine: log, progress, disk watch, flash-attn fallback, size budget, in-image checks',
    options: [
      ['--tag <tag>', 'image tag', 'steadydancer:local'],
      ['--no-cache', 'build without the layer cache'],
      ['--variant <variant>', 'STEADYDANCER_VARIANT: fp8 | fp16 | gguf-<quant>'],
      ['--bake', 'bake the model weights into the image (HF_TOKEN goes in as a BuildKit secret)'],
      ['--build-arg <K=V...>', 'extra build args (repeatable)'],
      ['--log <file>', 'full build log', 'build-full.log'],
      ['--size-budget-gb <n>', 'fail when the image is larger', '50'],
      ['--packs <list>', 'node packs: all | none | cached | comma list of lock names', 'all'],
      ['--engine <path>', 'docker client (default $STEADYDANCER_DOCKER, /usr/bin/docker, docker)'],
      ['--standin', 'build on the local stand-in base (local/base:bookworm, Python 3.11, torch from PyPI)'],
      ['--no-verify', 'skip the verification run inside the image'],
      ['--no-flash-fallback', 'do not rebuild without flash-attn when its step fails'],
    ],
    load: () => import('./commands/build.js'),
  },
  {
    name: 'up',
    summary: 'start the image with compose (docker/docker-compose.yml, + the GPU override when a GPU is seen) and wait until ComfyUI answers',
    options: [
      ['--cpu', 'leave the GPU override out (CPU mode)'],
      ['--gpu', 'add the GPU override even when nvidia-smi sees no GPU'],
      ['--timeout <s>', 'longest wait for /system_stats', '300'],
      ['--file <compose.yml>', 'base compose file (default docker/docker-compose.yml)'],
      ['--engine <path>', 'docker client (default $STEADYDANCER_DOCKER, /usr/bin/docker, docker)'],
      ['--build', 'let compose build the image first'],
    ],
    load: () => import('./commands/up.js'),
  },
  {
    name: 'down',
    summary: 'stop and remove what `up` started (compose down)',
    options: [
      ['--file <compose.yml>', 'base compose file (default docker/docker-compose.yml)'],
      ['--engine <path>', 'docker client (default $STEADYDANCER_DOCKER, /usr/bin/docker, docker)'],
      ['--volumes', 'also remove named volumes'],
    ],
    load: () => import('./commands/down.js'),
  },
  {
    name: 'smoke',
    summary: 'check a running ComfyUI: UI, node types, the UI workflow in Chromium, upload, a 512x512 ~30-frame job, the mp4 (ffprobe)',
    options: [
      ['--url <url>', 'ComfyUI base URL', 'http://127.0.0.1:8188'],
      ['--workflow <api.json>', 'API-format workflow (default docker/workflows/steadydancer-dance.api.json)'],
      ['--ui-workflow <json>', 'UI-format workflow for the browser check (default docker/workflows/steadydancer-dance.json)'],
      ['--image <file>', 'reference image (default docker/samples/reference.png)'],
      ['--video <file>', 'driving video (default docker/samples/dance.mp4)'],
      ['--screenshot <file>', 'where the browser check saves its screenshot', 'reports/smoke-ui.png'],
      ['--out <file>', 'where to save the generated mp4', 'reports/smoke.mp4'],
      ['--chromium <path>', 'Chromium executable (default $CHROMIUM_PATH or /usr/bin/chromium)'],
      ['--no-browser', 'skip the browser check'],
      ['--no-generate', 'skip upload, job, and mp4 checks'],
      ['--params <json>', 'workflow parameters as a JSON object (default width 512, height 512, frames 30)'],
      ['--set <key=value...>', 'one workflow parameter (repeatable), e.g. --set steps=4'],
      ['--timeout <s>', 'longest wait for the job', '1800'],
    ],
    load: () => import('./commands/smoke.js'),
  },
  {
    name: 'run',
    summary: 'every phase in its wave (doctor; lint; models ∥ deps-build; build; local-test) with a markdown + JSON report',
    options: [
      ['--skip <ids>', 'leave these phases out (comma list)'],
      ['--only <ids>', 'run only these phases (comma list)'],
      ['--out <file>', 'report path without extension (default reports/plan-<timestamp>)'],
      ['--variant <name>', 'model variant for doctor and models (default $STEADYDANCER_VARIANT or fp8)'],
      ['--tag <tag>', 'image tag the build phase builds and local-test runs', 'steadydancer:local'],
      ['--engine <path>', 'docker client (default $STEADYDANCER_DOCKER, /usr/bin/docker, docker)'],
      ['--no-generate', 'local-test: check UI and node types only, no job'],
      ['--no-browser', 'local-test: skip the browser check'],
      ['--params <json>', 'local-test: workflow parameters as a JSON object (default width 512, height 512, frames 30)'],
      ['--set <key=value...>', 'local-test: one workflow parameter (repeatable), e.g. --set frames=9 on a CPU'],
      ['--strict', 'no CPU plan: what this host lacks (GPU, Docker, Hub) fails the run instead of a WARN (environment)'],
    ],
    load: () => import('./commands/run.js'),
  },
  {
    name: 'models',
    summary: 'model files from docker/models.json: check on the Hub, download',
    subcommands: [
      {
        name: 'check',
        summary: 'ask the Hub about every file of a variant (ok / missing / gated / network error)',
        options: [
          ['--variant <name>', 'fp8 (default), fp16, gguf-…'],
          ['--jobs <n>', 'files asked in parallel (default 8)'],
          ['--timeout <s>', 'connect/response timeout in seconds (default 10)'],
          ['--token-file <path>', 'read the Hugging Face token from this file (default: HF_TOKEN)'],
          ['--manifest <path>', 'model manifest (default docker/models.json)'],
        ],
        load: () => import('./commands/models-check.js'),
      },
      {
        name: 'download',
        summary: 'download every file of a variant into DIR: parallel, resumable, sha256-verified',
        options: [
          ['--variant <name>', 'fp8 (default), fp16, gguf-… (env STEADYDANCER_VARIANT)'],
          ['--dest <dir>', 'models directory (env MODELS_DIR)'],
          ['--jobs <n>', 'files downloaded in parallel (default 4)'],
          ['--connections <n>', 'connections (byte ranges) per file of 256 MiB or more (default 1)'],
          ['--check', 'no download: report whether DIR already has every file'],
          ['--no-fallback', 'do not fall back from fp8 to fp16'],
          ['--no-presets', 'leave out the presets\' files (the fast LoRA)'],
          ['--retries <n>', 'retries per file on drops and 5xx (default 5)'],
          ['--timeout <s>', 'read timeout in seconds (default 60)'],
          ['--token-file <path>', 'read the Hugging Face token from this file (default: HF_TOKEN)'],
          ['--manifest <path>', 'model manifest (default docker/models.json)'],
        ],
        load: () => import('./commands/models-download.js'),
      },
    ],
  },
];

function addCommand(parent: Command, spec: CommandSpec, run: (spec: CommandSpec, cmd: Command, args: string[]) => Promise<void>): void {
  const cmd = parent.command(spec.name).description(spec.summary);
  for (const a of spec.args ?? []) cmd.argument(a);
  for (const [flags, desc, def] of spec.options ?? []) {
    if (def === undefined) cmd.option(flags, desc);
    else cmd.option(flags, desc, def as string);
  }
  cmd.option('--json', 'print one JSON document on stdout');
  if (spec.subcommands?.length) {
    for (const sub of spec.subcommands) addCommand(cmd, sub, run);
  }
  if (spec.load) cmd.action(async (...params: unknown[]) => run(spec, params[params.length - 1] as Command, params.slice(0, -2) as string[]));
}

export interface CliIO {
  out?: (text: string) => void;
  err?: NodeJS.WritableStream & { isTTY?: boolean };
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  signal?: AbortSignal;
}

/** Runs the CLI on argv (without node and script) and returns the exit code. Never exits. */
export async function runCli(argv: string[], io: CliIO = {}): Promise<number> {
  const env = io.env ?? process.env;
  registerEnvSecrets(env);
  const errStream = io.err ?? process.stderr;
  let exitCode = 0;
  let jsonMode = argv.includes('--json');
  const out = io.out ?? ((t: string) => void process.stdout.write(t.endsWith('\n') ? t : t + '\n'));

  const program = new Command('steadydancer')
    .description('Build, verify and run SteadyDancer (ComfyUI) on rented GPUs')
    .option('-v, --verbose', 'debug output')
    .option('-q, --quiet', 'warnings and errors only')
    .exitOverride()
    .configureOutput({ writeOut: (s) => out(s.trimEnd()), writeErr: (s) => void errStream.write(s) })
    .showHelpAfterError('(run with --help for usage)');

  const run = async (spec: CommandSpec, cmd: Command, args: string[]) => {
    const opts = cmd.optsWithGlobals() as Record<string, unknown>;
    jsonMode = Boolean(opts.json);
    const level = opts.verbose ? 'debug' : opts.quiet ? 'warn' : 'info';
    const logger = createLogger({ level, stream: errStream });
    const ctx: Context = {
      logger,
      json: jsonMode,
      cwd: io.cwd ?? process.cwd(),
      env,
      out,
      signal: io.signal ?? new AbortController().signal,
    };
    const mod = await spec.load!();
    exitCode = await (mod.default as CommandMain)(opts, ctx, args);
  };
  for (const spec of commands) addCommand(program, spec, run);

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    return reportError(err, jsonMode, errStream, out);
  }
}

function reportError(err: unknown, json: boolean, errStream: NodeJS.WritableStream, out: (t: string) => void): number {
  if (err instanceof CommanderError) {
    // help and version are "errors" in commander's exitOverride model
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
    return err.exitCode === 0 ? 0 : 2;
  }
  if (err instanceof ExitError) {
    if (err.message) errStream.write(redactText(err.message) + '\n');
    return err.exitCode;
  }
  if (err instanceof ActionableError) {
    if (json) out(JSON.stringify({ ok: false, error: { code: err.code, message: redactText(err.message), hint: err.hint ?? null } }, null, 2));
    errStream.write(redactText(`error: ${err.message}`) + '\n');
    if (err.hint) errStream.write(redactText(`hint: ${err.hint}`) + '\n');
    return err.exitCode;
  }
  // An unexpected error is a bug: show the stack so it can be reported.
  errStream.write(redactText(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : errorMessage(err)}`) + '\n');
  return 70;
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const ac = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => ac.abort(new Error(`received ${sig}`)));
  const code = await runCli(process.argv.slice(2), { signal: ac.signal });
  process.exit(code);
}
