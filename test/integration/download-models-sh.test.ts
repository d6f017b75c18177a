/**
 * docker/download_models.sh as the image runs it: the script and a models.json side by side in
 * a docker/ folder, the toolkit found through STEADYDANCER_HOME, the Hub on loopback.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/util/paths.js';
import { fakeManifestDoc, FakeHub } from '../helpers/fake-hub.js';

const root = projectRoot();
let hub: FakeHub;
let work: string;
let script: string;
const fp8 = randomBytes(1_000_003);
const vae = randomBytes(500_001);

const manifest = () => fakeManifestDoc();

beforeAll(async () => {
  hub = await new FakeHub()
    .add('Kijai/WanVideo_comfy_fp8_scaled', 'SteadyDancer/sd_fp8.safetensors', { data: fp8, gated: true })
    .add('Comfy-Org/Wan_2.1_ComfyUI_repackaged', 'split_files/vae/wan_2.1_vae.safetensors', { data: vae })
    .start();
  work = mkdtempSync(join(tmpdir(), 'sd-dlsh-'));
  mkdirSync(join(work, 'docker'));
  script = join(work, 'docker', 'download_models.sh');
  copyFileSync(join(root, 'docker', 'download_models.sh'), script);
  writeFileSync(join(work, 'docker', 'models.json'), JSON.stringify(manifest()));
});

afterAll(async () => {
  await hub.stop();
  rmSync(work, { recursive: true, force: true });
});

const run = (args: string[], env: Record<string, string> = {}) =>
  execa('bash', [script, ...args], {
    reject: false,
    all: true,
    env: { PATH: process.env.PATH!, HOME: work, STEADYDANCER_HOME: root, HF_ENDPOINT: hub.hubUrl, ...env },
    extendEnv: false,
  });

describe('docker/download_models.sh', () => {
  it('downloads the variant with the token from a file, then --check passes; the token is never printed', async () => {
    const tokenFile = join(work, 'hf_token');
    writeFileSync(tokenFile, hub.token + '\n');
    const dest = join(work, 'models');
    const r = await run(['--variant', 'fp8', '--dest', dest, '--jobs', '2', '--token-file', tokenFile]);
    expect(r.all).not.toContain(hub.token);
    expect(r.exitCode, r.all).toBe(0);
    expect(readFileSync(join(dest, 'diffusion_models/sd_fp8.safetensors')).equals(fp8)).toBe(true);
    expect(readFileSync(join(dest, 'vae/wan_2.1_vae.safetensors')).equals(vae)).toBe(true);
    const c = await run(['--dest', dest, '--check']);
    expect(c.exitCode, c.all).toBe(0);
    expect(c.all).toContain('ok: every file of fp8 is present');
  });

  it('MODELS_DIR and STEADYDANCER_VARIANT are the defaults; HF_TOKEN from the environment works', async () => {
    const dest = join(work, 'models-env');
    const r = await run(['--json'], { MODELS_DIR: dest, STEADYDANCER_VARIANT: 'fp8', HF_TOKEN: hub.token });
    expect(r.exitCode, r.all).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: true, variant: 'fp8', dest });
    expect(r.all).not.toContain(hub.token);
  });

  it('gated without a token: exit 1 with the advice', async () => {
    const r = await run(['--dest', join(work, 'models-gated'), '--no-fallback']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('refused with HTTP 401');
    expect(r.stderr).toContain('set HF_TOKEN');
  });

  it('usage errors exit 2 with a message', async () => {
    const a = await run(['--dest']);
    expect(a.exitCode).toBe(2);
    expect(a.stderr).toContain('--dest needs a value');
    const b = await run(['--bogus']);
    expect(b.exitCode).toBe(2);
    expect(b.stderr).toContain('unknown option: --bogus');
    const c = await run([]);
    expect(c.exitCode).toBe(2);
    expect(c.stderr).toContain('no destination: pass --dest DIR or set MODELS_DIR');
    const d = await run(['--dest', work, '--jobs', 'x']);
    expect(d.exitCode).toBe(2);
    expect(d.stderr).toContain('--jobs must be a positive integer');
    const e = await run(['--dest', work], { STEADYDANCER_HOME: join(work, 'nowhere') });
    expect(e.exitCode).toBe(2);
    expect(e.stderr).toContain('the steadydancer toolkit is not at');
  });

  it('--help prints the usage', async () => {
    const r = await run(['--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('download_models.sh --variant fp8|fp16|gguf-… --dest DIR [--jobs N] [--check]');
    expect(r.stdout).not.toContain('set -euo');
  });
});
