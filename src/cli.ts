#!/usr/bin/env node
/**
 * The command table of `steadydancer`. Only declarations live here: each entry lazily imports
 * its command module, whose default export does the work and returns an exit code.
 */
import { Command, CommanderError, Option } from 'commander';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as flags from './commands/flags.js';
import type { OptionDef } from './commands/flags.js';
import type { CommandSpec, CommandMain, OptionSpec } from './commands/types.js';
import { PHASE_IDS } from './plan/phase-ids.js';
import type { Context } from './util/context.js';
import { ActionableError, ExitError, errorMessage } from './util/errors.js';
import { createLogger, registerEnvSecrets, redactText } from './util/logger.js';
import { toolkitVersion } from './util/paths.js';

export const commands: CommandSpec[] = [
  // Each issue's commands are added here as they land: doctor, lint, sources, build, models,
  // up, down, smoke, run, generate, worker, serve. Shared options and every parser: ./commands/flags.ts.
  { name: 'version', summary: 'print the toolkit version', load: () => import('./commands/version.js') },
  {
    name: 'generate',
    summary: 'submit a dance job (reference image + driving video) to the local API or a RunPod endpoint and write the mp4',
    options: [
      { flags: '--image <file|url>', description: 'reference image of the person (PNG, JPEG or WebP; a path or an https URL)', required: true },
      { flags: '--video <file|url>', description: 'driving dance video (a path or an https URL)', required: true },
      ['--endpoint <local|id|url>', 'local (the local API), a RunPod endpoint id, or a base URL', 'local'],
      ['--out <file>', 'where to write the mp4', 'steadydancer.mp4'],
      flags.params(),
      flags.set(),
      { flags: '--seed <n>', description: 'seed; the one used is reported', defaultText: 'random', parse: flags.nonNegativeInt },
      { flags: '--poll-ms <ms>', description: 'status polling interval', default: 1000, parse: flags.positiveInt },
    ],
    load: () => import('./commands/generate.js'),
  },
  {
    name: 'worker',
    summary: 'the RunPod serverless worker (the image entry in serverless mode): takes jobs, runs them in ComfyUI',
    args: ['[comfy...]'],
    options: [flags.comfyUrl(), flags.seconds('--ready-timeout <s>', 'longest wait for ComfyUI to be ready (start and after a crash)', 600), flags.workDir()],
    load: () => import('./commands/worker.js'),
  },
  {
    name: 'serve',
    summary: "the local API with RunPod's routes (/run, /runsync, /status, /stream, /cancel, /health)",
    args: ['[comfy...]'],
    options: [
      ['--host <addr>', 'address to listen on', '127.0.0.1'],
      { flags: '--port <n>', description: 'port to listen on (0: any free port)', default: 8000, parse: flags.port },
      flags.comfyUrl(),
      flags.seconds('--ready-timeout <s>', 'longest wait for ComfyUI to be ready before each job', 600),
      flags.workDir(),
    ],
    load: () => import('./commands/serve.js'),
  },
  {
    name: 'doctor',
    summary: 'phase 1: host preflight (GPU, driver/CUDA, Docker, BuildKit, Compose, disk, base image)',
    options: [
      { flags: '--models-dir <dir>', description: 'where models go', defaultText: '$MODELS_DIR, /runpod-volume/models, /workspace/models, ./models' },
      flags.variant('model variant to size the models disk for'),
      { flags: '--models-size-gb <n>', description: "the variant's total size in GB", defaultText: 'from docker/models.json', parse: flags.nonNegativeGb },
      { flags: '--base-image <image>', description: 'base image to look for', defaultText: 'BASE_IMAGE in docker/Dockerfile' },
      { flags: '--min-docker-free-gb <n>', description: 'free space wanted at the Docker root', default: 20, parse: flags.nonNegativeGb },
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
      { flags: '--rule <ids>', description: 'only these rule ids (comma list)', parse: flags.idList() },
    ],
    load: () => import('./commands/lint.js'),
  },
  {
    name: 'sources',
    summary: 'pinned upstream sources in the content-addressed cache (fetch | list | verify)',
    subcommands: [
      {
        name: 'fetch',
        summary: "clone the lock's sources into the cache at their pinned commits (all, or the names given)",
        args: ['[names...]'],
        options: [
          ['--from <path>', 'seed from a local git repository or a folder of mirrors instead of the network'],
          ['--force', 'refetch even when the cache entry verifies'],
          ['--require-all', 'with --from: a source the mirrors lack is an error (default: a warning; the build leaves it out)'],
          flags.lockFile(),
        ],
        load: () => import('./commands/sources/fetch.js'),
      },
      {
        name: 'list',
        summary: 'every source of the lock and its cache state',
        options: [flags.lockFile()],
        load: () => import('./commands/sources/list.js'),
      },
      {
        name: 'verify',
        summary: 'check that cached sources are git checkouts at their pinned commits',
        args: ['[names...]'],
        options: [['--require-all', 'also fail when a source is not in the cache'], flags.lockFile()],
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
      flags.variant('STEADYDANCER_VARIANT build arg: the variant --bake puts in the image', "the Dockerfile's"),
      ['--bake', 'bake the model weights into the image (HF_TOKEN goes in as a BuildKit secret)'],
      ['--build-arg <K=V...>', 'extra build args (repeatable)'],
      ['--log <file>', 'full build log', 'build-full.log'],
      { flags: '--size-budget-gb <n>', description: 'fail when the image is larger', default: 50, parse: flags.positiveGb },
      ['--packs <list>', 'node packs: all | none | cached | comma list of lock names', 'all'],
      flags.engine(),
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
      { flags: '--cpu', description: 'leave the GPU override out (CPU mode)', conflicts: ['gpu'] },
      { flags: '--gpu', description: 'add the GPU override even when nvidia-smi sees no GPU' },
      flags.seconds('--timeout <s>', 'longest wait for /system_stats', 300),
      flags.composeFile(),
      flags.engine(),
      ['--build', 'let compose build the image first'],
    ],
    load: () => import('./commands/up.js'),
  },
  {
    name: 'down',
    summary: 'stop and remove what `up` started (compose down)',
    options: [flags.composeFile(), flags.engine(), ['--volumes', 'also remove named volumes']],
    load: () => import('./commands/down.js'),
  },
  {
    name: 'smoke',
    summary: 'check a running ComfyUI: UI, node types, the UI workflow in Chromium, upload, a 512x512 ~30-frame job, the mp4 (ffprobe)',
    options: [
      { flags: '--url <url>', description: 'ComfyUI base URL', default: 'http://127.0.0.1:8188', parse: flags.httpUrl },
      { flags: '--workflow <api.json>', description: 'API-format workflow', defaultText: 'docker/workflows/steadydancer-dance.api.json' },
      { flags: '--ui-workflow <json>', description: 'UI-format workflow for the browser check', defaultText: 'docker/workflows/steadydancer-dance.json' },
      { flags: '--image <file>', description: 'reference image', defaultText: 'docker/samples/reference.png' },
      { flags: '--video <file>', description: 'driving video', defaultText: 'docker/samples/dance.mp4' },
      ['--screenshot <file>', 'where the browser check saves its screenshot', 'reports/smoke-ui.png'],
      ['--out <file>', 'where to save the generated mp4', 'reports/smoke.mp4'],
      { flags: '--chromium <path>', description: 'Chromium executable', defaultText: '$CHROMIUM_PATH, else /usr/bin/chromium' },
      ['--no-browser', 'skip the browser check'],
      ['--no-generate', 'skip upload, job, and mp4 checks'],
      flags.params('workflow parameters as a JSON object', 'width 512, height 512, frames 30'),
      flags.set('one workflow parameter (repeatable), e.g. --set steps=4'),
      flags.seconds('--timeout <s>', 'longest wait for the job', 1800),
    ],
    load: () => import('./commands/smoke.js'),
  },
  {
    name: 'run',
    summary: 'every phase in its wave (doctor; lint; models ∥ deps-build; build; local-test) with a markdown + JSON report',
    options: [
      { flags: '--skip <ids>', description: 'leave these phases out (comma list)', parse: flags.idList(PHASE_IDS) },
      { flags: '--only <ids>', description: 'run only these phases (comma list)', parse: flags.idList(PHASE_IDS) },
      { flags: '--out <file>', description: 'report path without extension', defaultText: 'reports/plan-<timestamp>' },
      flags.variant('model variant for doctor and models'),
      ['--tag <tag>', 'image tag the build phase builds and local-test runs', 'steadydancer:local'],
      flags.engine(),
      ['--no-generate', 'local-test: check UI and node types only, no job'],
      ['--no-browser', 'local-test: skip the browser check'],
      flags.params('local-test: workflow parameters as a JSON object', 'width 512, height 512, frames 30'),
      flags.set('local-test: one workflow parameter (repeatable), e.g. --set frames=9 on a CPU'),
      ['--strict', 'no CPU plan: what this host lacks (GPU, Docker, Hub) fails the run instead of a WARN (environment)'],
    ],
    load: () => import('./commands/run.js'),
  },
  {
    name: 'models',
    summary: 'model files from docker/models.json: check on the Hub, download, prefetch',
    subcommands: [
      {
        name: 'check',
        summary: 'ask the Hub about every file of a variant (ok / missing / gated / network error)',
        options: [
          flags.variant('model variant to check', flags.VARIANT_DEFAULT, { choices: false }),
          flags.jobs('files asked in parallel', 8),
          flags.seconds('--timeout <s>', 'connect/response timeout', 10),
          flags.tokenFile(),
          flags.manifest(),
        ],
        load: () => import('./commands/models-check.js'),
      },
      {
        name: 'download',
        summary: 'download every file of a variant into DIR: parallel, resumable, sha256-verified',
        options: [
          flags.variant('model variant to download', "$STEADYDANCER_VARIANT, else the variant DIR holds verified, else the manifest's defaultVariant", { choices: false }),
          { flags: '--dest <dir>', description: 'models directory', defaultText: '$MODELS_DIR' },
          flags.jobs('files downloaded in parallel', 4),
          { flags: '--connections <n>', description: 'connections (byte ranges) per file of 256 MiB or more', default: 1, parse: flags.positiveInt },
          ['--check', 'no download: report whether DIR already has every file'],
          ['--no-fallback', 'do not fall back from fp8 to fp16'],
          ['--no-presets', "leave out the presets' files (the fast LoRA)"],
          { flags: '--retries <n>', description: 'retries per file on drops and 5xx', default: 5, parse: flags.nonNegativeInt },
          flags.seconds('--timeout <s>', 'read timeout', 60),
          flags.tokenFile(),
          flags.manifest(),
        ],
        load: () => import('./commands/models-download.js'),
      },
      {
        name: 'prefetch',
        summary: "read a variant's files in DIR into the page cache (start.sh runs it beside ComfyUI's start)",
        options: [
          flags.variant('model variant to read', "$STEADYDANCER_VARIANT, else the variant DIR holds verified, else the manifest's defaultVariant", { choices: false }),
          { flags: '--dest <dir>', description: 'models directory', defaultText: '$MODELS_DIR' },
          flags.jobs('readers in parallel (64 MiB pieces)', 8),
          ['--text-encoder', 'also read the text encoder (otherwise read only on a prompt-cache miss)'],
          ['--no-presets', "leave out the presets' files (the fast LoRA)"],
          { flags: '--after-comfy <url>', description: 'start reading once the ComfyUI at this URL answers /system_stats (start.sh)', parse: flags.httpUrl },
          flags.seconds('--wait <s>', 'how long to wait for --after-comfy', 900),
          flags.manifest(),
        ],
        load: () => import('./commands/models-prefetch.js'),
      },
    ],
  },
];

/** An OptionSpec as commander's Option: parser, choices, mandatory, conflicts and the default shown one way. */
function toOption(spec: OptionSpec, env: NodeJS.ProcessEnv): Option {
  const def: OptionDef = Array.isArray(spec) ? { flags: spec[0], description: spec[1], ...(spec[2] === undefined ? {} : { default: spec[2] }) } : spec;
  // A default known only at run time is shown in commander's own "(default: …)" form.
  const o = new Option(def.flags, def.default === undefined && def.defaultText ? `${def.description} (default: ${def.defaultText})` : def.description);
  if (def.parse) o.argParser(def.parse as (value: string, previous: unknown) => unknown);
  const choices = typeof def.choices === 'function' ? def.choices(env) : def.choices;
  if (choices) o.choices(choices);
  if (def.default !== undefined) o.default(def.default);
  if (def.required) o.makeOptionMandatory();
  if (def.conflicts) o.conflicts(def.conflicts);
  return o;
}

function addCommand(parent: Command, spec: CommandSpec, env: NodeJS.ProcessEnv, run: (spec: CommandSpec, cmd: Command, args: string[]) => Promise<void>): void {
  const cmd = parent.command(spec.name).description(spec.summary);
  for (const a of spec.args ?? []) cmd.argument(a);
  for (const o of spec.options ?? []) cmd.addOption(toOption(o, env));
  cmd.option('--json', 'print one JSON document on stdout (errors too)');
  if (spec.subcommands?.length) {
    for (const sub of spec.subcommands) addCommand(cmd, sub, env, run);
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
  // Until commander has parsed, --json is looked for among our own arguments (not after `--`).
  const dashdash = argv.indexOf('--');
  let jsonMode = (dashdash < 0 ? argv : argv.slice(0, dashdash)).includes('--json');
  const out = io.out ?? ((t: string) => void process.stdout.write(t.endsWith('\n') ? t : t + '\n'));

  const program = new Command('steadydancer')
    .description('Build, verify and run SteadyDancer (ComfyUI) on rented GPUs')
    .option('-v, --verbose', 'debug output')
    .option('-q, --quiet', 'warnings and errors only')
    .version(toolkitVersion(), '-V, --version', 'print the toolkit version')
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
  for (const spec of commands) addCommand(program, spec, env, run);

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
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' || err.exitCode === 0) return 0;
    // A usage error in commander's words (already on stderr): under --json also one JSON document.
    if (json)
      out(JSON.stringify({ ok: false, error: { code: 'E_USAGE', commanderCode: err.code, message: redactText(err.message.replace(/^error: /, '')), hint: 'run with --help for usage' } }, null, 2));
    return 2;
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
