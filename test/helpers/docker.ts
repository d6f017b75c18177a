/**
 * Docker engine for integration tests: makes one answer (scripts/ensure-docker.sh installs
 * docker.io when missing and starts dockerd, as root), makes the stand-in base image, and
 * builds the test image when asked. Returns a reason string when something cannot be had, for
 * a loud skip.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { connectEngine, engineBin, inspectImage, type Engine } from '../../src/docker/engine.js';
import { runBuild, STANDIN_ARGS, type BuildReport } from '../../src/docker/build.js';
import { findCompose } from '../../src/docker/compose.js';
import { realRunner } from '../../src/system/exec.js';
import { memoryLogger } from '../../src/util/logger.js';

export const TEST_IMAGE = process.env.STEADYDANCER_TEST_IMAGE ?? 'steadydancer:test';

let engine: Engine | undefined;
let reason: string | undefined;

/** Connects to (or starts) a Docker engine with the stand-in base; a reason string when it cannot. */
export async function ensureEngine(): Promise<{ engine?: Engine; reason?: string }> {
  if (engine || reason) return { engine, reason };
  const root = process.cwd();
  try {
    execFileSync(join(root, 'scripts', 'ensure-docker.sh'), ['--base'], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 900_000 });
  } catch (e) {
    // ensure-docker exits 0 when it cannot help; a non-zero exit is the base image step
    reason = `scripts/ensure-docker.sh --base failed: ${String((e as { stderr?: Buffer }).stderr ?? e)
      .trim()
      .split('\n')
      .pop()}`;
    return { reason };
  }
  try {
    engine = await connectEngine(engineBin(undefined, process.env));
  } catch (e) {
    reason = `no Docker engine: ${(e as Error).message} (scripts/ensure-docker.sh needs root and apt-get to install docker.io)`;
    return { reason };
  }
  if (!(await inspectImage(engine, STANDIN_ARGS.BASE_IMAGE))) {
    reason = `the stand-in base ${STANDIN_ARGS.BASE_IMAGE} is missing (scripts/make-base-image.sh needs debootstrap and root)`;
    engine = undefined;
  }
  return { engine, reason };
}

/**
 * The CPU test image, built with `steadydancer build`'s runner on the stand-in base with every
 * node pack the source cache holds. Reused when it exists unless `rebuild`.
 */
export async function buildTestImage(opts: { rebuild?: boolean; buildArgs?: Record<string, string>; logPath?: string } = {}): Promise<BuildReport | undefined> {
  const { engine: e } = await ensureEngine();
  if (!e) return undefined;
  if (!opts.rebuild && (await inspectImage(e, TEST_IMAGE))) return undefined;
  return runBuild({
    root: process.cwd(),
    tag: TEST_IMAGE,
    engineBin: e.bin,
    standin: true,
    packs: 'cached',
    buildArgs: opts.buildArgs,
    logPath: opts.logPath ?? join(process.cwd(), '.test-results', 'build-full.log'),
    env: process.env,
    logger: memoryLogger('info'),
    progressIntervalMs: 60_000,
  });
}

/** Why Compose cannot be used here (the product's own lookup, as `up` does it), or undefined. */
export async function composeSkipReason(bin = engineBin(undefined, process.env)): Promise<string | undefined> {
  try {
    await findCompose(realRunner, bin, process.env);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
