/**
 * docker/docker-compose.yml (+ the GPU override): parsed as YAML here, and validated by
 * Debian's docker-compose 1.29 when it is installed (the same check a user's client does).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { needs } from '../../helpers/skips.js';

const dir = join(process.cwd(), 'docker');
const base = parse(readFileSync(join(dir, 'docker-compose.yml'), 'utf8')) as { version?: string; services: Record<string, any> };
const gpu = parse(readFileSync(join(dir, 'docker-compose.gpu.yml'), 'utf8')) as { services: Record<string, any> };
const hasCompose1 = spawnSync('docker-compose', ['version'], { encoding: 'utf8' }).status === 0;

describe('compose files', () => {
  it('no version key; one service built from docker/Dockerfile with host-network builds', () => {
    expect(base.version).toBeUndefined();
    const s = base.services.steadydancer;
    expect(s.build).toMatchObject({ context: '..', dockerfile: 'docker/Dockerfile', network: 'host' });
  });
  it('publishes ComfyUI 8188 and the local API 8000 on loopback by default; models and outputs volumes', () => {
    const s = base.services.steadydancer;
    expect(s.ports).toEqual(['${BIND_ADDRESS:-127.0.0.1}:${COMFYUI_HOST_PORT:-8188}:8188', '${BIND_ADDRESS:-127.0.0.1}:${API_HOST_PORT:-8000}:8000']);
    expect(s.volumes.some((v: string) => v.endsWith(':/workspace/models'))).toBe(true);
    expect(s.volumes.some((v: string) => v.endsWith(':/opt/ComfyUI/output'))).toBe(true);
    expect(s.environment).toContain('HF_TOKEN');
  });
  it('the GPU reservation exists only in the override file (a CPU run leaves that file out)', () => {
    expect(base.services.steadydancer.deploy).toBeUndefined();
    expect(base.services.steadydancer.runtime).toBeUndefined();
    expect(gpu.services.steadydancer.deploy.resources.reservations.devices[0]).toEqual({ driver: 'nvidia', count: 'all', capabilities: ['gpu'] });
  });
});

const skip = needs('compose files under docker-compose 1.29', !hasCompose1 && 'docker-compose (Debian 1.29) is not installed: apt-get install -y docker-compose');
describe.skipIf(skip)('docker-compose 1.29 accepts them', () => {
  it('config -q passes for the CPU file and for CPU + GPU override; the merged config has the reservation', () => {
    execFileSync('docker-compose', ['-f', join(dir, 'docker-compose.yml'), 'config', '-q']);
    const merged = execFileSync('docker-compose', ['-f', join(dir, 'docker-compose.yml'), '-f', join(dir, 'docker-compose.gpu.yml'), 'config'], { encoding: 'utf8' });
    const m = parse(merged) as { services: Record<string, any> };
    expect(m.services.steadydancer.deploy.resources.reservations.devices[0].driver).toBe('nvidia');
    expect(m.services.steadydancer.ports).toHaveLength(2);
  });
});
