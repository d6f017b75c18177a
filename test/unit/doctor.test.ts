import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordedRunner, type Recording } from '../../src/system/exec.js';
import { runDoctor, renderDoctor, resolveModelsDir, type DoctorResult, type Status } from '../../src/system/doctor.js';
import { cudaFromDriver, parseGpuQuery, parseSmiHeader, probeGpu } from '../../src/system/gpu.js';
import { nearestExisting, parseDfPk } from '../../src/system/df.js';
import { probeCompose, probeEngine } from '../../src/docker/probe.js';

const FIX = join(process.cwd(), 'test', 'fixtures', 'doctor');
const GB = 1e9;

function host(name: string) {
  const rec = JSON.parse(readFileSync(join(FIX, name, 'recording.json'), 'utf8')) as Recording;
  const h = JSON.parse(readFileSync(join(FIX, name, 'host.json'), 'utf8')) as { modelsDir: string; exists: string[] };
  const exists = (p: string) => h.exists.includes(p);
  return { run: recordedRunner(rec), modelsDir: h.modelsDir, exists };
}

async function doctorOn(name: string, modelBytes: number | null = 33 * GB): Promise<DoctorResult> {
  const h = host(name);
  return runDoctor({ ...h, variant: 'fp8', modelBytes, baseImage: 'nvidia/cuda:12.8.1-runtime-ubuntu24.04' });
}

const status = (r: DoctorResult) => Object.fromEntries(r.checks.map((c) => [c.id, c.status])) as Record<string, Status>;
const check = (r: DoctorResult, id: string) => r.checks.find((c) => c.id === id)!;

describe('doctor on recorded hosts', () => {
  it('healthy H100 (driver 570, CUDA 12.8, Docker 27 + buildx, Compose v2): every row PASS', async () => {
    const r = await doctorOn('h100-healthy');
    expect(status(r)).toEqual({
      'gpu.present': 'PASS',
      'gpu.cuda': 'PASS',
      'gpu.compute': 'PASS',
      'docker.engine': 'PASS',
      'docker.buildkit': 'PASS',
      'gpu.container-toolkit': 'PASS',
      'docker.compose': 'PASS',
      'disk.docker-root': 'PASS',
      'disk.models': 'PASS',
      'docker.base-image': 'PASS',
    });
    expect(r.ok).toBe(true);
    expect(check(r, 'gpu.present').detail).toBe('1× NVIDIA H100 80GB HBM3 (80 GiB)');
    expect(check(r, 'gpu.cuda').detail).toBe('driver 570.124.06 supports CUDA 12.8 (nvidia-smi header)');
    expect(check(r, 'gpu.compute').detail).toBe('compute capability 9.0');
    expect(check(r, 'docker.compose').detail).toMatch(/Compose v2 2\.32\.4/);
    expect(check(r, 'docker.buildkit').detail).toMatch(/buildx/);
    expect(r.facts.dockerRoot!.freeBytes).toBe(1712345600 * 1024);
    expect(check(r, 'disk.models').detail).toContain('187.9 GB free at /workspace/models; the fp8 variant needs 33.0 GB');
  });

  it('old driver (535 / CUDA 12.2) on A100: CUDA FAIL with the driver to install, compute WARN (no fp8 cores)', async () => {
    const r = await doctorOn('old-driver');
    expect(check(r, 'gpu.present')).toMatchObject({ status: 'PASS', detail: '2× NVIDIA A100-SXM4-80GB (80 GiB)' });
    const cuda = check(r, 'gpu.cuda');
    expect(cuda.status).toBe('FAIL');
    expect(cuda.detail).toBe('driver 535.104.05 supports CUDA 12.2 (nvidia-smi header); the image needs 12.8');
    expect(cuda.impact).toMatch(/upgrade the NVIDIA driver to ≥ 570\.26/);
    expect(check(r, 'gpu.compute')).toMatchObject({ status: 'WARN', detail: 'compute capability 8.0: no fp8 tensor cores' });
    // recorded on this machine through Debian's client: BuildKit built in, Compose 1.29
    expect(check(r, 'docker.buildkit')).toMatchObject({ status: 'PASS' });
    expect(check(r, 'docker.buildkit').detail).toMatch(/built in/);
    expect(check(r, 'docker.compose').detail).toBe('Compose 1.29.2 (docker-compose)');
    // no nvidia runtime in that engine and no toolkit CLI: containers would not see the GPUs
    expect(check(r, 'gpu.container-toolkit')).toMatchObject({ status: 'WARN' });
    expect(check(r, 'gpu.container-toolkit').impact).toMatch(/install nvidia-container-toolkit/);
    expect(r.ok).toBe(false);
  });

  it('no GPU (this machine, recorded): GPU FAIL says so plainly and what it means; GPU rows SKIP', async () => {
    const r = await doctorOn('this-host');
    const gpu = check(r, 'gpu.present');
    expect(gpu.status).toBe('FAIL');
    expect(gpu.detail).toBe('no NVIDIA GPU: nvidia-smi is not installed (no NVIDIA driver on this host)');
    expect(gpu.impact).toMatch(/GPU phases .* will be skipped; build, lint, models and the CPU smoke can still run/);
    expect(status(r)['gpu.cuda']).toBe('SKIP');
    expect(status(r)['gpu.compute']).toBe('SKIP');
    expect(status(r)['gpu.container-toolkit']).toBe('SKIP');
    expect(status(r)['docker.engine']).toBe('PASS');
    // the docker 28 client on PATH here has no buildx: BuildKit builds through it fail
    expect(check(r, 'docker.buildkit')).toMatchObject({ status: 'WARN' });
    expect(check(r, 'docker.buildkit').detail).toMatch(/no buildx plugin/);
    expect(check(r, 'disk.models').detail).toMatch(/not created yet; measured at \/\)/);
    expect(check(r, 'docker.base-image')).toMatchObject({ status: 'WARN' });
    expect(r.ok).toBe(false);
  });

  it("engine down (recorded): engine FAIL with docker's own reason, rows that need it SKIP", async () => {
    const r = await doctorOn('engine-down');
    const e = check(r, 'docker.engine');
    expect(e.status).toBe('FAIL');
    expect(e.detail).toMatch(/Cannot connect to the Docker daemon/);
    for (const id of ['docker.buildkit', 'disk.docker-root', 'docker.base-image']) expect(status(r)[id]).toBe('SKIP');
    expect(status(r)['docker.compose']).toBe('PASS');
  });

  it('full disk: Docker root below 20 GB and MODELS_DIR below the variant size both FAIL, with how much to free', async () => {
    const r = await doctorOn('full-disk');
    const root = check(r, 'disk.docker-root');
    expect(root.status).toBe('FAIL');
    expect(root.detail).toMatch(/^3\.2 GB free of 107\.4 GB at \/var\/lib\/docker/);
    expect(root.impact).toMatch(/free at least 16\.8 GB/);
    const m = check(r, 'disk.models');
    expect(m.status).toBe('FAIL');
    expect(m.impact).toMatch(/free 22\.3 GB more/);
    expect(status(r)['gpu.present']).toBe('PASS');
    expect(r.counts).toEqual({ PASS: 8, WARN: 0, FAIL: 2, SKIP: 0 });
  });

  it('an unknown variant size is a WARN that says how to give it', async () => {
    const r = await doctorOn('h100-healthy', null);
    expect(check(r, 'disk.models')).toMatchObject({ status: 'WARN' });
    expect(check(r, 'disk.models').impact).toMatch(/--models-size-gb/);
  });

  it('the human rendering shows every row and the impact of the non-PASS ones', async () => {
    const text = renderDoctor(await doctorOn('this-host'));
    expect(text).toMatch(/^FAIL {2}gpu\.present +NVIDIA GPU: no NVIDIA GPU/m);
    expect(text).toMatch(/→ GPU phases/);
    expect(text).toMatch(/doctor: \d+ pass, \d+ warn, 1 fail, 3 skipped — not ready/);
  });
});

describe('probes and parsers', () => {
  it('parses the nvidia-smi query and header', () => {
    expect(parseGpuQuery('NVIDIA H100 80GB HBM3, 570.124.06, 9.0, 81559 MiB\nNVIDIA L4, 570.124.06, 8.9, 23034 MiB\n')).toEqual([
      { index: 0, name: 'NVIDIA H100 80GB HBM3', driverVersion: '570.124.06', computeCap: '9.0', memoryMiB: 81559 },
      { index: 1, name: 'NVIDIA L4', driverVersion: '570.124.06', computeCap: '8.9', memoryMiB: 23034 },
    ]);
    expect(parseGpuQuery('Tesla T4, 470.82.01, [N/A], 15109 MiB')[0]!.computeCap).toBeNull();
    expect(() => parseGpuQuery('garbage')).toThrow(/unexpected nvidia-smi query line/);
    expect(parseSmiHeader('| NVIDIA-SMI 575.57.08   Driver Version: 575.57.08   CUDA Version: 12.9  |')).toEqual({ driverVersion: '575.57.08', cudaVersion: '12.9' });
  });

  it('falls back to the driver table when the header has no CUDA version', async () => {
    expect(cudaFromDriver('570.124.06')).toBe('12.8');
    expect(cudaFromDriver('570.26')).toBe('12.8');
    expect(cudaFromDriver('565.57.01')).toBe('12.6');
    expect(cudaFromDriver('535.104.05')).toBe('12.2');
    expect(cudaFromDriver('450.80.02')).toBeNull();
    const run = recordedRunner({
      'nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader': 'NVIDIA L40S, 570.86.15, 8.9, 46068 MiB\n',
      'nvidia-smi': '| NVIDIA-SMI 570.86.15   Driver Version: 570.86.15 |\n',
    });
    expect(await probeGpu(run)).toMatchObject({ present: true, cudaVersion: '12.8', cudaSource: 'driver table' });
  });

  it("nvidia-smi present but the driver broken: no GPU, with nvidia-smi's reason", async () => {
    const run = recordedRunner({
      'nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader': {
        exitCode: 9,
        stdout: "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n",
      },
    });
    const g = await probeGpu(run);
    expect(g.present).toBe(false);
    expect(g.reason).toMatch(/^nvidia-smi failed: NVIDIA-SMI has failed because it couldn't communicate/);
  });

  it('parses df -Pk, including a mount point with spaces, and rejects other output', () => {
    expect(parseDfPk('Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sdb1 1000 400 600 40% /mnt/my disk\n')).toEqual({
      filesystem: '/dev/sdb1',
      totalBytes: 1024000,
      usedBytes: 409600,
      freeBytes: 614400,
      mountpoint: '/mnt/my disk',
    });
    expect(() => parseDfPk('df: /x: No such file or directory\n')).toThrow(/unexpected df output/);
  });

  it('measures a path that does not exist yet at its nearest existing parent', () => {
    const have = new Set(['/', '/data']);
    expect(nearestExisting('/data/models/fp8', (p) => have.has(p))).toBe('/data');
    expect(nearestExisting('/nope/x', (p) => have.has(p))).toBe('/');
  });

  it('MODELS_DIR follows the image: $MODELS_DIR, /runpod-volume, /workspace, else ./models', () => {
    const none = () => false;
    expect(resolveModelsDir({ MODELS_DIR: '/m' }, '/repo', none)).toBe('/m');
    expect(resolveModelsDir({}, '/repo', (p) => p === '/runpod-volume')).toBe('/runpod-volume/models');
    expect(resolveModelsDir({}, '/repo', (p) => p === '/workspace')).toBe('/workspace/models');
    expect(resolveModelsDir({}, '/repo', none)).toBe('/repo/models');
  });

  it('docker missing entirely, and compose v2 preferred over v1', async () => {
    expect(await probeEngine(recordedRunner({}))).toMatchObject({ clientInstalled: false, reachable: false, reason: 'the docker client is not installed' });
    expect(await probeCompose(recordedRunner({ 'docker compose version': 'Docker Compose version v2.29.1\n', 'docker-compose version --short': '1.29.2\n' }))).toEqual({
      kind: 'v2',
      version: '2.29.1',
      command: ['docker', 'compose'],
    });
    expect(await probeCompose(recordedRunner({}))).toEqual({ kind: null, version: null, command: null });
  });
});
