/**
 * What `worker` and `serve` share: ComfyUI (supervised when a command is given, else external),
 * the bounded readiness wait, and the dance handler wired to the pipeline's ComfyUI client,
 * parameter resolver and workflow filler.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../util/logger.js';
import { waitForComfy } from '../comfy/client.js';
import { ComfySupervisor } from '../comfy/supervisor.js';
import { createDanceHandler } from '../job/handler.js';
import type { JobHandler } from './jobs.js';
import { DEFAULT_LIMITS, type MediaLimits } from '../job/media.js';
import { s3ConfigFromEnv } from '../job/output.js';
import { danceGlue } from '../job/pipeline-glue.js';

export interface ServiceOptions {
  comfyUrl: string;
  /** ComfyUI's command line to supervise; empty = ComfyUI is run by someone else. */
  comfyCommand: string[];
  /** Working directory and environment of the supervised ComfyUI (default: ours). */
  comfyCwd?: string;
  comfyEnv?: NodeJS.ProcessEnv;
  readyTimeoutMs: number;
  workDir?: string;
  env: NodeJS.ProcessEnv;
  logger: Logger;
}

export interface Service {
  handler: JobHandler;
  /** Ready (bounded by readyTimeoutMs) or throws. */
  ready(signal: AbortSignal): Promise<void>;
  /** Aborted when the supervised ComfyUI exits (undefined when not supervised). */
  crashSignal(): AbortSignal | undefined;
  /** ComfyUI keeps crashing and is no longer restarted: the worker must be replaced. */
  mustRefresh(): boolean;
  supervisor?: ComfySupervisor;
  /** The validation the local API runs at submission (400 on bad input). */
  validate(input: unknown): string | undefined;
  stop(): Promise<void>;
}

/** Media limits from the environment (MAX_VIDEO_FRAMES, MAX_VIDEO_SECONDS, …), else defaults. */
export function limitsFromEnv(env: NodeJS.ProcessEnv): MediaLimits {
  const n = (k: string, d: number) => (env[k] && Number.isFinite(Number(env[k])) ? Number(env[k]) : d);
  return {
    maxImageBytes: n('MAX_IMAGE_BYTES', DEFAULT_LIMITS.maxImageBytes),
    maxVideoBytes: n('MAX_VIDEO_BYTES', DEFAULT_LIMITS.maxVideoBytes),
    fetchTimeoutMs: n('FETCH_TIMEOUT_MS', DEFAULT_LIMITS.fetchTimeoutMs),
    minImageSide: DEFAULT_LIMITS.minImageSide,
    maxImageSide: n('MAX_IMAGE_SIDE', DEFAULT_LIMITS.maxImageSide),
    maxVideoSide: n('MAX_VIDEO_SIDE', DEFAULT_LIMITS.maxVideoSide),
    maxVideoFrames: n('MAX_VIDEO_FRAMES', DEFAULT_LIMITS.maxVideoFrames),
    maxVideoSeconds: n('MAX_VIDEO_SECONDS', DEFAULT_LIMITS.maxVideoSeconds),
  };
}

export async function createService(opts: ServiceOptions): Promise<Service> {
  const { env, logger } = opts;
  const unsafe = env.STEADYDANCER_UNSAFE_ALLOW_PRIVATE_URLS === '1';
  if (unsafe) logger.warn('STEADYDANCER_UNSAFE_ALLOW_PRIVATE_URLS=1: job URLs may reach loopback/private/metadata addresses — development only');
  const s3 = s3ConfigFromEnv(env);
  if (s3) logger.info('results go to S3 bucket %s at %s', s3.bucket, s3.endpoint);
  const workDir = opts.workDir ?? (await mkdtemp(join(tmpdir(), 'steadydancer-jobs-')));
  let supervisor: ComfySupervisor | undefined;
  if (opts.comfyCommand.length) {
    supervisor = new ComfySupervisor({ command: opts.comfyCommand, cwd: opts.comfyCwd, env: opts.comfyEnv, baseUrl: opts.comfyUrl, logger: logger.child('comfyui') });
    supervisor.start();
  }
  const glue = await danceGlue({ comfyUrl: opts.comfyUrl, env, onVariant: (d) => logger.info('jobs without "variant" run %s (%s)', d.variant, d.reason) });
  const handler = createDanceHandler({
    comfy: glue.comfy,
    resolve: glue.resolve,
    fill: glue.fill,
    check: glue.check,
    workDir,
    limits: limitsFromEnv(env),
    fetchPolicy: { allowPrivateNetworks: unsafe },
    s3,
  });
  return {
    handler,
    supervisor,
    ready: (signal) => (supervisor ? supervisor.waitReady(opts.readyTimeoutMs, signal) : waitForComfy(opts.comfyUrl, { timeoutMs: opts.readyTimeoutMs, signal })),
    crashSignal: () => supervisor?.crashSignal(),
    mustRefresh: () => Boolean(supervisor?.gaveUp),
    validate: glue.validate,
    stop: async () => {
      await supervisor?.stop();
    },
  };
}
