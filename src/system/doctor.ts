/**
 * Phase 1, host preflight: can this machine build and run the image? Every check is a row
 * PASS / WARN / FAIL (or SKIP when a check it depends on failed) with what it means for the
 * later phases. Everything the host is asked goes through the injected Runner.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Runner } from './exec.js';
import { diskSpace, fmtGB, GB, type DiskSpace } from './df.js';
import { compareVersions, probeGpu, type GpuProbe } from './gpu.js';
import { engineSupportsBuildKit, imagePresent, probeCompose, probeEngine, probeInfo, type ComposeProbe, type EngineProbe, type InfoProbe } from '../docker/probe.js';

export type Status = 'PASS' | 'WARN' | 'FAIL' | 'SKIP';

export interface Check {
  id: string;
  title: string;
  status: Status;
  detail: string;
  /** What this result means for the later phases (build, models, up/smoke, GPU runs). */
  impact: string;
}

export interface DoctorOptions {
  run: Runner;
  exists?: (p: string) => boolean;
  /** Where models go (see resolveModelsDir). */
  modelsDir: string;
  variant: string;
  /** Total bytes of the chosen variant's files; null when unknown. */
  modelBytes: number | null;
  /** Where modelBytes came from (e.g. "docker/models.json", "--models-size-gb"). */
  modelBytesSource?: string;
  baseImage: string;
  /** Free space wanted at the Docker root (default 20 GB). */
  minDockerFreeBytes?: number;
}

export interface DoctorResult {
  ok: boolean;
  counts: Record<Status, number>;
  checks: Check[];
  facts: {
    gpu: GpuProbe;
    engine: EngineProbe;
    info: InfoProbe | null;
    compose: ComposeProbe;
    dockerRoot: DiskSpace | null;
    models: (DiskSpace & { requiredBytes: number | null }) | null;
  };
}

export const MIN_CUDA = '12.8';
export const MIN_DRIVER_FOR_MIN_CUDA = '570.26';
export const FP8_FAST_CAP = '8.9';
export const MIN_CAP = '8.0';
export const DEFAULT_MIN_DOCKER_FREE = 20 * GB;

const GPU_SKIPPED = 'GPU phases (full-size smoke, GPU benchmarks) will be skipped; build, lint, models and the CPU smoke can still run';

/**
 * The models directory with the image's own rule: $MODELS_DIR, else /runpod-volume/models when
 * that volume exists, else /workspace/models on pods, else ./models under the project.
 */
export function resolveModelsDir(env: NodeJS.ProcessEnv, root: string, exists: (p: string) => boolean = existsSync): string {
  if (env.MODELS_DIR) return env.MODELS_DIR;
  if (exists('/runpod-volume')) return '/runpod-volume/models';
  if (exists('/workspace')) return '/workspace/models';
  return join(root, 'models');
}

function gpuChecks(gpu: GpuProbe): Check[] {
  if (!gpu.present) {
    return [
      { id: 'gpu.present', title: 'NVIDIA GPU', status: 'FAIL', detail: `no NVIDIA GPU: ${gpu.reason ?? 'none found'}`, impact: GPU_SKIPPED },
      { id: 'gpu.cuda', title: `driver supports CUDA ≥ ${MIN_CUDA}`, status: 'SKIP', detail: 'no GPU', impact: 'checked on a GPU host' },
      { id: 'gpu.compute', title: `compute capability (fp8 fast path ≥ ${FP8_FAST_CAP})`, status: 'SKIP', detail: 'no GPU', impact: 'checked on a GPU host' },
    ];
  }
  const list = gpu.gpus.map((g) => `${g.name}${g.memoryMiB ? ` (${Math.round(g.memoryMiB / 1024)} GiB)` : ''}`);
  const checks: Check[] = [
    {
      id: 'gpu.present',
      title: 'NVIDIA GPU',
      status: 'PASS',
      detail: `${gpu.gpus.length}× ${[...new Set(list)].join(', ')}`,
      impact: 'GPU phases can run',
    },
  ];
  const cuda = gpu.cudaVersion;
  const src = gpu.cudaSource ? ` (${gpu.cudaSource})` : '';
  if (!cuda) {
    checks.push({
      id: 'gpu.cuda',
      title: `driver supports CUDA ≥ ${MIN_CUDA}`,
      status: 'FAIL',
      detail: `driver ${gpu.driverVersion}: cannot tell which CUDA it supports`,
      impact: `the image's CUDA ${MIN_CUDA} torch may not start; install driver ≥ ${MIN_DRIVER_FOR_MIN_CUDA}`,
    });
  } else if (compareVersions(cuda, MIN_CUDA) < 0) {
    checks.push({
      id: 'gpu.cuda',
      title: `driver supports CUDA ≥ ${MIN_CUDA}`,
      status: 'FAIL',
      detail: `driver ${gpu.driverVersion} supports CUDA ${cuda}${src}; the image needs ${MIN_CUDA}`,
      impact: `torch 2.8.0+cu128 in the image cannot use this GPU: GPU phases will fail; upgrade the NVIDIA driver to ≥ ${MIN_DRIVER_FOR_MIN_CUDA} (build and CPU phases still run)`,
    });
  } else {
    checks.push({
      id: 'gpu.cuda',
      title: `driver supports CUDA ≥ ${MIN_CUDA}`,
      status: 'PASS',
      detail: `driver ${gpu.driverVersion} supports CUDA ${cuda}${src}`,
      impact: 'the image runs on this driver',
    });
  }
  const caps = gpu.gpus.map((g) => g.computeCap);
  const known = caps.filter((c): c is string => c !== null);
  const lowest = known.sort(compareVersions)[0];
  if (!lowest) {
    checks.push({
      id: 'gpu.compute',
      title: `compute capability (fp8 fast path ≥ ${FP8_FAST_CAP})`,
      status: 'WARN',
      detail: 'nvidia-smi did not report compute_cap (driver too old?)',
      impact: 'cannot tell whether fp8 runs natively; the fp16 variant is the safe choice',
    });
  } else if (compareVersions(lowest, MIN_CAP) < 0) {
    checks.push({
      id: 'gpu.compute',
      title: `compute capability (fp8 fast path ≥ ${FP8_FAST_CAP})`,
      status: 'FAIL',
      detail: `compute capability ${lowest}; the image targets Ampere (8.0) and newer`,
      impact: 'GPU phases will fail (no bf16, kernels not built for this architecture)',
    });
  } else if (compareVersions(lowest, FP8_FAST_CAP) < 0) {
    checks.push({
      id: 'gpu.compute',
      title: `compute capability (fp8 fast path ≥ ${FP8_FAST_CAP})`,
      status: 'WARN',
      detail: `compute capability ${lowest}: no fp8 tensor cores`,
      impact: 'fp8 weights are upcast at run time (slower); runs work; consider the fp16 variant if VRAM allows',
    });
  } else {
    checks.push({
      id: 'gpu.compute',
      title: `compute capability (fp8 fast path ≥ ${FP8_FAST_CAP})`,
      status: 'PASS',
      detail: `compute capability ${lowest}`,
      impact: 'fp8 weights run on fp8 tensor cores',
    });
  }
  return checks;
}

/**
 * BuildKit: the engine must speak API ≥ 1.39. Clients before 23.0 have BuildKit built in
 * (DOCKER_BUILDKIT=1); from 23.0 on the client needs the buildx plugin, and without it
 * `DOCKER_BUILDKIT=1 docker build` stops with "BuildKit is enabled but the buildx component
 * is missing or broken".
 */
export function buildKitCheck(engine: EngineProbe, info: InfoProbe | null): Check {
  const title = 'BuildKit';
  if (!engineSupportsBuildKit(engine.serverApiVersion)) {
    return {
      id: 'docker.buildkit',
      title,
      status: 'FAIL',
      detail: `engine API ${engine.serverApiVersion ?? '?'} is older than 1.39 (Docker 18.09): no BuildKit`,
      impact: 'the Dockerfile (cache mounts, build secrets) cannot build; upgrade Docker',
    };
  }
  if (info?.buildx) return { id: 'docker.buildkit', title, status: 'PASS', detail: 'buildx plugin present (BuildKit builder)', impact: 'cache mounts and build secrets in the Dockerfile work' };
  const major = parseInt(engine.clientVersion ?? '0', 10);
  if (major > 0 && major < 23) {
    return {
      id: 'docker.buildkit',
      title,
      status: 'PASS',
      detail: `client ${engine.clientVersion} has BuildKit built in (DOCKER_BUILDKIT=1; steadydancer build sets it)`,
      impact: 'cache mounts and build secrets in the Dockerfile work',
    };
  }
  return {
    id: 'docker.buildkit',
    title,
    status: 'WARN',
    detail: `the docker client on PATH (${engine.clientVersion ?? 'unknown version'}) has no buildx plugin: from Docker 23 on, BuildKit builds need it`,
    impact:
      'builds through this client fail ("buildx component is missing"); install docker-buildx-plugin, or build with a client that has BuildKit built in (Debian docker.io 20.10: /usr/bin/docker)',
  };
}

/**
 * Containers see the GPU through the NVIDIA Container Toolkit: an `nvidia` runtime registered
 * with the engine, or the toolkit's CLI (used by `--gpus` / compose device reservations).
 */
async function containerToolkitCheck(run: Runner, gpu: GpuProbe, engine: EngineProbe, info: InfoProbe | null): Promise<Check> {
  const id = 'gpu.container-toolkit';
  const title = 'NVIDIA Container Toolkit';
  if (!gpu.present) return { id, title, status: 'SKIP', detail: 'no GPU', impact: 'checked on a GPU host' };
  if (!engine.reachable) return { id, title, status: 'SKIP', detail: 'no engine', impact: 'checked once the engine runs' };
  if (info?.nvidiaRuntime) return { id, title, status: 'PASS', detail: 'the engine has the nvidia runtime', impact: 'containers (compose GPU override) can use the GPU' };
  for (const [bin, args] of [
    ['nvidia-ctk', ['--version']],
    ['nvidia-container-cli', ['--version']],
  ] as const) {
    const r = await run(bin, [...args]);
    if (r.exitCode === 0) return { id, title, status: 'PASS', detail: `${bin} is installed`, impact: 'containers (compose GPU override) can use the GPU' };
  }
  return {
    id,
    title,
    status: 'WARN',
    detail: 'no nvidia runtime in the engine and neither nvidia-ctk nor nvidia-container-cli installed',
    impact: 'containers cannot see the GPU (up with the GPU override fails); install nvidia-container-toolkit and run `nvidia-ctk runtime configure --runtime=docker`',
  };
}

export async function runDoctor(opts: DoctorOptions): Promise<DoctorResult> {
  const { run } = opts;
  const exists = opts.exists ?? existsSync;
  const minFree = opts.minDockerFreeBytes ?? DEFAULT_MIN_DOCKER_FREE;
  const [gpu, engine, compose] = await Promise.all([probeGpu(run), probeEngine(run), probeCompose(run)]);
  const checks: Check[] = gpuChecks(gpu);

  const info = engine.reachable ? await probeInfo(run) : null;
  if (!engine.reachable) {
    checks.push({
      id: 'docker.engine',
      title: 'Docker engine reachable',
      status: 'FAIL',
      detail: engine.reason ?? 'unreachable',
      impact: 'build, up and smoke cannot run; lint runs without `docker compose config`; start the engine (dockerd) or install docker',
    });
    checks.push({ id: 'docker.buildkit', title: 'BuildKit', status: 'SKIP', detail: 'no engine', impact: 'checked once the engine runs' });
  } else {
    checks.push({
      id: 'docker.engine',
      title: 'Docker engine reachable',
      status: 'PASS',
      detail: `engine ${engine.serverVersion} (API ${engine.serverApiVersion ?? '?'}), client ${engine.clientVersion ?? '?'}`,
      impact: 'build, up and smoke can use it',
    });
    checks.push(buildKitCheck(engine, info));
  }

  checks.push(await containerToolkitCheck(run, gpu, engine, info));

  checks.push(
    compose.kind
      ? {
          id: 'docker.compose',
          title: 'Docker Compose',
          status: 'PASS',
          detail: compose.kind === 'v2' ? `Compose v2 ${compose.version} (docker compose)` : `Compose ${compose.version} (${compose.command!.join(' ')})`,
          impact: 'up/down and the smoke test can start the stack',
        }
      : {
          id: 'docker.compose',
          title: 'Docker Compose',
          status: 'FAIL',
          detail: 'neither `docker compose` (v2) nor `docker-compose` (v1) is installed',
          impact: 'up/down and the container smoke test cannot run; build still works; install docker-compose-plugin or docker-compose',
        },
  );

  let dockerRoot: DiskSpace | null = null;
  if (!info?.dockerRootDir) {
    checks.push({
      id: 'disk.docker-root',
      title: `free disk at the Docker root ≥ ${fmtGB(minFree)}`,
      status: 'SKIP',
      detail: 'no engine: Docker root unknown',
      impact: 'checked once the engine runs',
    });
  } else {
    try {
      dockerRoot = await diskSpace(run, info.dockerRootDir, exists);
      const ok = dockerRoot.freeBytes >= minFree;
      checks.push({
        id: 'disk.docker-root',
        title: `free disk at the Docker root ≥ ${fmtGB(minFree)}`,
        status: ok ? 'PASS' : 'FAIL',
        detail: `${fmtGB(dockerRoot.freeBytes)} free of ${fmtGB(dockerRoot.totalBytes)} at ${info.dockerRootDir} (${dockerRoot.mountpoint})`,
        impact: ok ? 'room for the image build' : `the image build will run out of space: free at least ${fmtGB(minFree - dockerRoot.freeBytes)} (docker system prune, or move the Docker root)`,
      });
    } catch (err) {
      checks.push({
        id: 'disk.docker-root',
        title: `free disk at the Docker root ≥ ${fmtGB(minFree)}`,
        status: 'WARN',
        detail: (err as Error).message,
        impact: 'free space unknown: the build may run out of disk',
      });
    }
  }

  let models: DoctorResult['facts']['models'] = null;
  const need = opts.modelBytes;
  const title = `free disk at MODELS_DIR for the ${opts.variant} models`;
  try {
    const d = await diskSpace(run, opts.modelsDir, exists);
    models = { ...d, requiredBytes: need };
    const where = `${opts.modelsDir}${d.probedPath !== opts.modelsDir ? ` (not created yet; measured at ${d.probedPath})` : ''}`;
    if (need === null) {
      checks.push({
        id: 'disk.models',
        title,
        status: 'WARN',
        detail: `${fmtGB(d.freeBytes)} free at ${where}; the ${opts.variant} variant's size is unknown`,
        impact: 'cannot tell whether the model download fits (pass --models-size-gb, or add the variant to docker/models.json)',
      });
    } else {
      const ok = d.freeBytes >= need;
      checks.push({
        id: 'disk.models',
        title,
        status: ok ? 'PASS' : 'FAIL',
        detail: `${fmtGB(d.freeBytes)} free at ${where}; the ${opts.variant} variant needs ${fmtGB(need)}${opts.modelBytesSource ? ` (${opts.modelBytesSource})` : ''}`,
        impact: ok ? 'the model download fits' : `models download will stop before the first byte: free ${fmtGB(need - d.freeBytes)} more, pick a smaller variant, or set MODELS_DIR to a larger disk`,
      });
    }
  } catch (err) {
    checks.push({ id: 'disk.models', title, status: 'WARN', detail: (err as Error).message, impact: 'free space unknown: the model download may not fit' });
  }

  if (!engine.reachable) {
    checks.push({ id: 'docker.base-image', title: 'base image present locally', status: 'SKIP', detail: `${opts.baseImage}: no engine`, impact: 'checked once the engine runs' });
  } else {
    const present = await imagePresent(run, opts.baseImage);
    checks.push({
      id: 'docker.base-image',
      title: 'base image present locally',
      status: present ? 'PASS' : 'WARN',
      detail: `${opts.baseImage} ${present ? 'is present' : 'is not present locally'}`,
      impact: present ? 'the build starts without pulling the base' : 'the build pulls it from the registry (needs registry access); offline, pass --build-arg BASE_IMAGE=<a local image>',
    });
  }

  const counts: Record<Status, number> = { PASS: 0, WARN: 0, FAIL: 0, SKIP: 0 };
  for (const c of checks) counts[c.status]++;
  return { ok: counts.FAIL === 0, counts, checks, facts: { gpu, engine, info, compose, dockerRoot, models } };
}

export function renderDoctor(r: DoctorResult): string {
  const idW = Math.max(...r.checks.map((c) => c.id.length));
  const lines: string[] = [];
  for (const c of r.checks) {
    lines.push(`${c.status.padEnd(4)}  ${c.id.padEnd(idW)}  ${c.title}: ${c.detail}`);
    if (c.status !== 'PASS') lines.push(`${' '.repeat(6 + idW)}  → ${c.impact}`);
  }
  lines.push('');
  lines.push(`doctor: ${r.counts.PASS} pass, ${r.counts.WARN} warn, ${r.counts.FAIL} fail, ${r.counts.SKIP} skipped — ${r.ok ? 'ready' : 'not ready (see FAIL rows)'}`);
  return lines.join('\n');
}
