/**
 * The downloader and `models check` against a Hub + CDN pair running on loopback (see
 * test/helpers/fake-hub.ts). Files of a few MB are made here; every test asserts the bytes on
 * disk, the error text, and what did (not) reach each server.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.js';
import { checkModels } from '../../src/models/check.js';
import { downloadModels, type DownloadOptions } from '../../src/models/download.js';
import { fetchMetadata, hubConfig, HubError } from '../../src/models/hub.js';
import { parseManifest, type Manifest } from '../../src/models/manifest.js';
import { plainProgress } from '../../src/models/progress.js';
import { VERIFIED_FILE } from '../../src/models/verified-cache.js';
import { ActionableError } from '../../src/util/errors.js';
import { memoryLogger } from '../../src/util/logger.js';
import { COMMIT, fakeManifestDoc, FakeHub, sha256 } from '../helpers/fake-hub.js';
import { freePort as deadPort } from '../../src/comfy/native.js';
import { captureCli } from '../helpers/cli.js';

const MB = 1024 * 1024;

/** A manifest shaped like docker/models.json, pointing at the fake repos. */
function testManifest(overrides: (d: any) => void = () => {}): Manifest {
  const d: any = fakeManifestDoc({ fastPreset: true });
  overrides(d);
  return parseManifest(d, 'test-manifest');
}

let hub: FakeHub;
let dest: string;
let data: Record<'fp8' | 'fp16' | 'vae' | 'lora', Buffer>;

beforeEach(async () => {
  data = { fp8: randomBytes(4 * MB + 123), fp16: randomBytes(3 * MB + 7), vae: randomBytes(2 * MB + 1), lora: randomBytes(300_001) };
  hub = await new FakeHub()
    .add('Kijai/WanVideo_comfy_fp8_scaled', 'SteadyDancer/sd_fp8.safetensors', { data: data.fp8 })
    .add('Kijai/WanVideo_comfy', 'SteadyDancer/sd_fp16.safetensors', { data: data.fp16 })
    .add('Comfy-Org/Wan_2.1_ComfyUI_repackaged', 'split_files/vae/wan_2.1_vae.safetensors', { data: data.vae })
    .add('Kijai/WanVideo_comfy', 'Lightx2v/lora.safetensors', { data: data.lora, lfs: false })
    .start();
  dest = mkdtempSync(join(tmpdir(), 'sd-models-'));
});

afterEach(async () => {
  await hub.stop();
  rmSync(dest, { recursive: true, force: true });
});

const fp8Key = 'Kijai/WanVideo_comfy_fp8_scaled/SteadyDancer/sd_fp8.safetensors';

function opts(extra: Partial<DownloadOptions> & { env?: NodeJS.ProcessEnv } = {}): DownloadOptions & { logger: ReturnType<typeof memoryLogger> } {
  const { env, ...rest } = extra;
  const logger = memoryLogger('debug');
  return {
    manifest: testManifest(),
    variant: 'fp8',
    dest,
    hub: hubConfig({ HF_ENDPOINT: hub.hubUrl, HF_TOKEN: hub.token, HOME: dest, ...env }, { timeouts: { bodyTimeoutMs: 2000, headersTimeoutMs: 2000, connectTimeoutMs: 2000 } }),
    logger,
    jobs: 2,
    retryMinTimeoutMs: 5,
    // the worker-thread hasher, which large files use, for these small ones too (resumes, drops,
    // restarts and bad bodies all go through it); the CLI tests below keep the default
    threadHashMinBytes: 0,
    ...rest,
  } as DownloadOptions & { logger: ReturnType<typeof memoryLogger> };
}

const onDisk = (rel: string) => readFileSync(join(dest, rel));
const leftovers = () => {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(join(d, e.name).slice(dest.length + 1));
    }
  };
  walk(dest);
  return out.sort();
};

describe('Hub metadata', () => {
  it('reads size, sha256, commit and the CDN location from the first response, without following it', async () => {
    const cfg = hubConfig({ HF_ENDPOINT: hub.hubUrl, HF_TOKEN: hub.token });
    const m = await fetchMetadata(cfg, testManifest().files['sd-fp8']!);
    expect(m.size).toBe(data.fp8.length);
    expect(m.sha256).toBe(sha256(data.fp8));
    expect(m.commit).toBe(COMMIT);
    expect(m.downloadUrl.startsWith(hub.cdnUrl + '/cdn/')).toBe(true);
    expect(hub.requests('cdn')).toHaveLength(0);
    const heads = hub.requests('hub', 'HEAD');
    expect(heads).toHaveLength(1);
    expect(heads[0]!.url).toBe('/Kijai/WanVideo_comfy_fp8_scaled/resolve/main/SteadyDancer/sd_fp8.safetensors');
    expect(heads[0]!.authorization).toBe(`Bearer ${hub.token}`);
  });

  it('asks for the pinned commit when the manifest has one', async () => {
    const cfg = hubConfig({ HF_ENDPOINT: hub.hubUrl });
    const f = { ...testManifest().files['vae']!, commit: 'a'.repeat(40) };
    await fetchMetadata(cfg, f);
    expect(hub.requests('hub')[0]!.url).toContain(`/resolve/${'a'.repeat(40)}/`);
  });

  it('HF_HUB_OFFLINE: no request at all', async () => {
    const cfg = hubConfig({ HF_ENDPOINT: hub.hubUrl, HF_HUB_OFFLINE: '1' });
    await expect(fetchMetadata(cfg, testManifest().files['vae']!)).rejects.toMatchObject({ kind: 'offline' });
    expect(hub.log).toHaveLength(0);
  });

  it('a token file (BuildKit secret style) is read and used; a missing one is a clear error', async () => {
    const tf = join(dest, 'hf_token');
    writeFileSync(tf, `${hub.token}\n`);
    const cfg = hubConfig({ HF_ENDPOINT: hub.hubUrl }, { tokenFile: tf });
    expect(cfg.tokenSource).toBe(tf);
    await fetchMetadata(cfg, testManifest().files['vae']!);
    expect(hub.requests('hub')[0]!.authorization).toBe(`Bearer ${hub.token}`);
    expect(() => hubConfig({}, { tokenFile: join(dest, 'nope') })).toThrow(/cannot read the token file .*nope: ENOENT/);
  });

  it('a bad HF_ENDPOINT is a usage error', () => {
    expect(() => hubConfig({ HF_ENDPOINT: 'ftp://mirror' })).toThrow(/HF_ENDPOINT "ftp:\/\/mirror" is not an http\(s\) URL/);
  });
});

describe('models download', () => {
  it('downloads every file of the variant in parallel: identical bytes, no token to the CDN, verified record', async () => {
    const o = opts();
    const s = await downloadModels(o);
    expect(s.ok).toBe(true);
    expect(s.variant).toBe('fp8');
    expect(s.files.map((f) => [f.target, f.status])).toEqual([
      ['diffusion_models/sd_fp8.safetensors', 'downloaded'],
      ['vae/wan_2.1_vae.safetensors', 'downloaded'],
      ['loras/lora.safetensors', 'downloaded'],
    ]);
    expect(onDisk('diffusion_models/sd_fp8.safetensors').equals(data.fp8)).toBe(true);
    expect(onDisk('vae/wan_2.1_vae.safetensors').equals(data.vae)).toBe(true);
    expect(onDisk('loras/lora.safetensors').equals(data.lora)).toBe(true);
    expect(leftovers()).toEqual([VERIFIED_FILE, 'diffusion_models/sd_fp8.safetensors', 'loras/lora.safetensors', 'vae/wan_2.1_vae.safetensors'].sort());
    // The CDN rejects any Authorization header with 400: it saw none, and served everything.
    expect(hub.requests('cdn').every((r) => r.authorization === undefined && r.status === 200)).toBe(true);
    expect(hub.requests('cdn')).toHaveLength(2);
    expect(hub.requests('hub').every((r) => r.authorization === `Bearer ${hub.token}`)).toBe(true);
    const rec = JSON.parse(readFileSync(join(dest, VERIFIED_FILE), 'utf8'));
    expect(rec.files['diffusion_models/sd_fp8.safetensors']).toMatchObject({ size: data.fp8.length, sha256: sha256(data.fp8), commit: COMMIT });
    expect(s.downloadedBytes).toBe(data.fp8.length + data.vae.length + data.lora.length);
  });

  it('a second run trusts the verified record: no request, no re-hash; a touched file is re-hashed, not re-downloaded', async () => {
    await downloadModels(opts());
    hub.log.length = 0;
    const s2 = await downloadModels(opts());
    expect(s2.files.every((f) => f.status === 'present')).toBe(true);
    expect(hub.log).toHaveLength(0);
    const o = opts();
    const t = new Date(Date.now() - 60_000);
    utimesSync(join(dest, 'vae/wan_2.1_vae.safetensors'), t, t);
    const s3 = await downloadModels(o);
    expect(s3.files.find((f) => f.id === 'vae')!.status).toBe('present');
    expect(o.logger.lines.some((l) => l.includes('verifying vae/wan_2.1_vae.safetensors'))).toBe(true);
    expect(hub.requests('cdn')).toHaveLength(0);
  });

  it('a changed file under the final name is fetched again', async () => {
    await downloadModels(opts());
    writeFileSync(join(dest, 'vae/wan_2.1_vae.safetensors'), randomBytes(data.vae.length));
    hub.log.length = 0;
    const s = await downloadModels(opts());
    expect(s.files.find((f) => f.id === 'vae')!.status).toBe('downloaded');
    expect(onDisk('vae/wan_2.1_vae.safetensors').equals(data.vae)).toBe(true);
  });

  it('resumes a .part with Range: only the rest is fetched', async () => {
    mkdirSync(join(dest, 'diffusion_models'), { recursive: true });
    writeFileSync(join(dest, 'diffusion_models/sd_fp8.safetensors.part'), data.fp8.subarray(0, MB));
    const s = await downloadModels(opts({ presets: [] }));
    expect(s.ok).toBe(true);
    expect(onDisk('diffusion_models/sd_fp8.safetensors').equals(data.fp8)).toBe(true);
    const get = hub.requests('cdn').find((r) => r.url.includes('sd_fp8'))!;
    expect(get.range).toBe(`bytes=${MB}-`);
    expect(get.status).toBe(206);
    expect(s.files[0]!.downloadedBytes).toBe(data.fp8.length - MB);
  });

  it('a server that answers 200 to a Range request: the download starts over and is still right', async () => {
    hub.files.get(fp8Key)!.ignoreRange = true;
    mkdirSync(join(dest, 'diffusion_models'), { recursive: true });
    writeFileSync(join(dest, 'diffusion_models/sd_fp8.safetensors.part'), randomBytes(MB)); // not even a prefix
    const s = await downloadModels(opts({ presets: [] }));
    expect(s.ok).toBe(true);
    expect(onDisk('diffusion_models/sd_fp8.safetensors').equals(data.fp8)).toBe(true);
  });

  it('a stale .part from another version: the resumed file fails sha256, one clean pass fixes it', async () => {
    mkdirSync(join(dest, 'diffusion_models'), { recursive: true });
    writeFileSync(join(dest, 'diffusion_models/sd_fp8.safetensors.part'), randomBytes(MB));
    const o = opts({ presets: [] });
    const s = await downloadModels(o);
    expect(s.ok).toBe(true);
    expect(onDisk('diffusion_models/sd_fp8.safetensors').equals(data.fp8)).toBe(true);
    expect(
      hub
        .requests('cdn')
        .filter((r) => r.url.includes('sd_fp8'))
        .map((r) => r.range ?? 'full'),
    ).toEqual([`bytes=${MB}-`, 'full']);
    expect(o.logger.lines.some((l) => l.includes('sha256 mismatch after resuming an old .part'))).toBe(true);
  });

  it('416 to a resume: starts over from byte 0', async () => {
    hub.files.get(fp8Key)!.unsatisfiableRange = { times: 1 };
    mkdirSync(join(dest, 'diffusion_models'), { recursive: true });
    writeFileSync(join(dest, 'diffusion_models/sd_fp8.safetensors.part'), data.fp8.subarray(0, MB));
    const o = opts({ presets: [] });
    const s = await downloadModels(o);
    expect(s.ok).toBe(true);
    expect(onDisk('diffusion_models/sd_fp8.safetensors').equals(data.fp8)).toBe(true);
    const gets = hub.requests('cdn').filter((r) => r.url.includes('sd_fp8'));
    expect(gets.map((g) => g.status)).toEqual([416, 200]);
    expect(o.logger.lines.some((l) => l.includes('refused to resume at byte 1048576 (416)'))).toBe(true);
  });

  it('a .part that is already complete is verified and renamed without fetching the body', async () => {
    mkdirSync(join(dest, 'diffusion_models'), { recursive: true });
    writeFileSync(join(dest, 'diffusion_models/sd_fp8.safetensors.part'), data.fp8);
    const s = await downloadModels(opts({ presets: [] }));
    expect(s.ok).toBe(true);
    expect(hub.requests('cdn').filter((r) => r.url.includes('sd_fp8'))).toHaveLength(0);
    expect(onDisk('diffusion_models/sd_fp8.safetensors').equals(data.fp8)).toBe(true);
  });

  it('a connection dropped mid-body is resumed and the bytes are identical', async () => {
    hub.files.get(fp8Key)!.dropAfterBytes = { bytes: 1_500_000, times: 2 };
    const o = opts({ presets: [] });
    const s = await downloadModels(o);
    expect(s.ok).toBe(true);
    expect(onDisk('diffusion_models/sd_fp8.safetensors').equals(data.fp8)).toBe(true);
    const gets = hub.requests('cdn').filter((r) => r.url.includes('sd_fp8'));
    expect(gets.length).toBe(3);
    expect(gets[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(Number(/\d+/.exec(gets[1]!.range!)![0])).toBeGreaterThan(0);
    expect(o.logger.lines.some((l) => /sd_fp8.*network error.*retrying/.test(l))).toBe(true);
  });

  it('5xx answers are retried with backoff', async () => {
    hub.files.get(fp8Key)!.status5xx = { status: 503, times: 2 };
    const s = await downloadModels(opts({ presets: [] }));
    expect(s.ok).toBe(true);
    expect(
      hub
        .requests('cdn')
        .filter((r) => r.url.includes('sd_fp8'))
        .map((r) => r.status),
    ).toEqual([503, 503, 200]);
  });

  it('a Hub answering 503 to HEAD is retried too', async () => {
    let n = 0;
    const real = (hub as any).onHub.bind(hub);
    (hub as any).onHub = (req: any, res: any) => (n++ === 0 ? (res.writeHead(503), res.end()) : real(req, res));
    const s = await downloadModels(opts({ presets: [] }));
    expect(s.ok).toBe(true);
    expect(n).toBeGreaterThan(2);
  });

  it('retries run out: a clear error, nothing under the final name', async () => {
    hub.files.get(fp8Key)!.status5xx = { status: 502, times: 99 };
    const s = await downloadModels(opts({ presets: [], retries: 2 }));
    expect(s.ok).toBe(false);
    expect(s.files[0]!.error!.message).toContain('HTTP 502');
    expect(existsSync(join(dest, 'diffusion_models/sd_fp8.safetensors'))).toBe(false);
  });

  it('an expired CDN link (403) makes it ask the Hub for a new one', async () => {
    hub.files.get(fp8Key)!.expireLink = { times: 1 };
    const s = await downloadModels(opts({ presets: [] }));
    expect(s.ok).toBe(true);
    expect(hub.requests('hub', 'HEAD').filter((r) => r.url.includes('sd_fp8')).length).toBe(2);
  });

  it('a stalled body hits the read timeout and the retry resumes it', async () => {
    hub.files.get(fp8Key)!.stallAfterBytes = { bytes: 700_000, times: 1 };
    const o = opts({ presets: [] });
    o.hub = { ...o.hub, bodyTimeoutMs: 300 };
    const s = await downloadModels(o);
    expect(s.ok).toBe(true);
    expect(onDisk('diffusion_models/sd_fp8.safetensors').equals(data.fp8)).toBe(true);
    expect(o.logger.lines.some((l) => l.includes('body stalled (read timeout)'))).toBe(true);
    expect(hub.requests('cdn').filter((r) => r.url.includes('sd_fp8'))[1]!.range).toBe('bytes=700000-');
  });

  it('interrupted (SIGINT/SIGTERM abort): a clear error, exit 130, the .part kept for the next run', async () => {
    // every request of this run stalls after 700 kB (the client's retries too), so the abort always
    // lands before the file is complete, however slowly this machine polls the .part below
    hub.files.get(fp8Key)!.stallAfterBytes = { bytes: 700_000, times: 1_000 };
    const ac = new AbortController();
    const o = opts({ presets: [], signal: ac.signal });
    const run = downloadModels(o).catch((e: unknown) => e);
    while (!existsSync(join(dest, 'diffusion_models/sd_fp8.safetensors.part'))) await new Promise((r) => setTimeout(r, 20));
    while (readFileSync(join(dest, 'diffusion_models/sd_fp8.safetensors.part')).length < 700_000) await new Promise((r) => setTimeout(r, 20));
    ac.abort(new Error('received SIGINT'));
    const err = (await run) as ActionableError;
    expect(err).toBeInstanceOf(ActionableError);
    expect(err.exitCode).toBe(130);
    expect(err.message).toContain('interrupted: partial downloads are kept as .part files');
    // The .part holds a prefix of the file (at least what was there before the abort; on a loaded
    // machine the retry after the stall may have added more before the abort landed).
    const part = readFileSync(join(dest, 'diffusion_models/sd_fp8.safetensors.part'));
    expect(part.length).toBeGreaterThanOrEqual(700_000);
    expect(part.length).toBeLessThan(data.fp8.length);
    expect(part.equals(data.fp8.subarray(0, part.length))).toBe(true);
    expect(existsSync(join(dest, 'diffusion_models/sd_fp8.safetensors'))).toBe(false);
    hub.files.get(fp8Key)!.stallAfterBytes = undefined;
    const again = await downloadModels(opts({ presets: [] }));
    expect(again.ok).toBe(true);
    expect(
      hub
        .requests('cdn')
        .filter((r) => r.url.includes('sd_fp8'))
        .pop()!.range,
    ).toBe(`bytes=${part.length}-`);
  });

  it('a body whose sha256 is wrong: clear error, nothing under the final name, no .part left', async () => {
    hub.files.get(fp8Key)!.corruptWith = randomBytes(data.fp8.length);
    const s = await downloadModels(opts({ presets: [] }));
    expect(s.ok).toBe(false);
    const f = s.files[0]!;
    expect(f.status).toBe('failed');
    expect(f.error!.code).toBe('E_CHECKSUM');
    expect(f.error!.message).toContain(`sha256 mismatch (expected ${sha256(data.fp8)}`);
    expect(f.error!.message).toContain('nothing was written under diffusion_models/sd_fp8.safetensors');
    expect(existsSync(join(dest, 'diffusion_models/sd_fp8.safetensors'))).toBe(false);
    expect(existsSync(join(dest, 'diffusion_models/sd_fp8.safetensors.part'))).toBe(false);
    // the other file still arrived
    expect(onDisk('vae/wan_2.1_vae.safetensors').equals(data.vae)).toBe(true);
  });

  it('the manifest sha256 wins over the Hub: a mismatch is refused before downloading', async () => {
    const m = testManifest((d) => (d.files.vae.sha256 = 'f'.repeat(64)));
    const s = await downloadModels(opts({ manifest: m, presets: [] }));
    const vae = s.files.find((f) => f.id === 'vae')!;
    expect(vae.error!.message).toContain(`docker/models.json says ${'f'.repeat(64)}`);
    expect(hub.requests('cdn').some((r) => r.url.includes('vae'))).toBe(false);
  });

  it('gated without a token: 401 with the advice to set HF_TOKEN and accept the licence', async () => {
    hub.files.get(fp8Key)!.gated = true;
    const err = await downloadModels(opts({ env: { HF_TOKEN: '' }, fallback: false })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubError);
    expect((err as HubError).message).toContain('gated: Kijai/WanVideo_comfy_fp8_scaled/SteadyDancer/sd_fp8.safetensors refused with HTTP 401');
    expect((err as HubError).hint).toContain('set HF_TOKEN');
    expect((err as HubError).hint).toContain(`accept the licence on ${hub.hubUrl}/`);
  });

  it('gated with a token that has no access: 403', async () => {
    hub.files.get(fp8Key)!.gated = true;
    const o = opts({ env: { HF_TOKEN: 'hf_other_token_xyz' }, fallback: false });
    const err = (await downloadModels(o).catch((e: unknown) => e)) as HubError;
    expect(err.message).toContain('HTTP 403: the token has no access');
    expect(err.message).not.toContain('hf_other_token_xyz');
  });

  it('gated with the right token downloads', async () => {
    hub.files.get(fp8Key)!.gated = true;
    const s = await downloadModels(opts({ presets: [] }));
    expect(s.ok).toBe(true);
    expect(s.variant).toBe('fp8');
  });

  it('fp8 unavailable (404) → fp16 is downloaded instead, and says so', async () => {
    hub.files.delete(fp8Key);
    const o = opts({ presets: [] });
    const s = await downloadModels(o);
    expect(s.ok).toBe(true);
    expect(s.variant).toBe('fp16');
    expect(s.fallbackFrom).toMatchObject({ variant: 'fp8' });
    expect(s.fallbackFrom!.reason).toContain('missing');
    expect(onDisk('diffusion_models/sd_fp16.safetensors').equals(data.fp16)).toBe(true);
    expect(existsSync(join(dest, 'diffusion_models/sd_fp8.safetensors'))).toBe(false);
    expect(o.logger.lines.some((l) => l.includes('variant fp8 is unavailable') && l.includes('trying fp16'))).toBe(true);
  });

  it('--no-fallback: 404 is a clear "missing" error', async () => {
    hub.files.delete(fp8Key);
    const err = (await downloadModels(opts({ fallback: false })).catch((e: unknown) => e)) as HubError;
    expect(err.kind).toBe('missing');
    expect(err.message).toContain('missing: Kijai/WanVideo_comfy_fp8_scaled/SteadyDancer/sd_fp8.safetensors is not on the Hub (HTTP 404 EntryNotFound)');
  });

  it('a shared file missing on the Hub fails that file only', async () => {
    hub.files.delete('Comfy-Org/Wan_2.1_ComfyUI_repackaged/split_files/vae/wan_2.1_vae.safetensors');
    const s = await downloadModels(opts());
    expect(s.ok).toBe(false);
    const vae = s.files.find((f) => f.id === 'vae')!;
    expect(vae.status).toBe('failed');
    expect(vae.error!.code).toBe('E_MISSING');
    expect(onDisk('diffusion_models/sd_fp8.safetensors').equals(data.fp8)).toBe(true);
  });

  it('not enough free space: refused before the first byte', async () => {
    hub.files.get(fp8Key)!.announceSize = 2 ** 52;
    const err = (await downloadModels(opts()).catch((e: unknown) => e)) as HubError;
    expect(err.kind).toBe('disk');
    expect(err.message).toMatch(/not enough free space in .*: 4\.5 PB to download/);
    expect(hub.requests('cdn')).toHaveLength(0);
  });

  it('HF_HUB_OFFLINE: verified files are fine without a request; missing ones are a clear error', async () => {
    await downloadModels(opts());
    hub.log.length = 0;
    const ok = await downloadModels(opts({ env: { HF_HUB_OFFLINE: '1' } }));
    expect(ok.ok).toBe(true);
    rmSync(join(dest, 'vae/wan_2.1_vae.safetensors'));
    const bad = await downloadModels(opts({ env: { HF_HUB_OFFLINE: '1' } }));
    expect(bad.ok).toBe(false);
    expect(bad.files.find((f) => f.id === 'vae')!.error!.message).toContain('HF_HUB_OFFLINE is set and vae/wan_2.1_vae.safetensors is missing');
    expect(hub.log).toHaveLength(0);
  });

  it('HF_HUB_OFFLINE with nothing on disk names the variants it looked for', async () => {
    const err = (await downloadModels(opts({ env: { HF_HUB_OFFLINE: '1' } })).catch((e: unknown) => e)) as HubError;
    expect(err.message).toContain('HF_HUB_OFFLINE is set and no variant of fp8 → fp16 is on disk');
    expect(hub.log).toHaveLength(0);
  });

  it('--check reports what DIR has without touching the network', async () => {
    const before = await downloadModels(opts({ checkOnly: true }));
    expect(before.ok).toBe(false);
    expect(before.files.map((f) => f.status)).toEqual(['absent', 'absent', 'absent']);
    await downloadModels(opts());
    hub.log.length = 0;
    const after = await downloadModels(opts({ checkOnly: true }));
    expect(after.ok).toBe(true);
    expect(hub.log).toHaveLength(0);
  });

  it('plain progress lines when not a TTY', async () => {
    const o = opts();
    const s = await downloadModels({ ...o, progress: plainProgress(o.logger, 1) });
    expect(s.ok).toBe(true);
    expect(o.logger.lines.some((l) => /^download: .* \/ .* \(100%\), .*\/s, ETA/.test(l))).toBe(true);
  });
});

describe('several connections per file (byte ranges)', () => {
  const seg = (extra: Partial<DownloadOptions> & { env?: NodeJS.ProcessEnv } = {}) => opts({ presets: [], connections: 3, segmentMinBytes: MB, ...extra });
  const fp8Gets = () => hub.requests('cdn').filter((r) => r.url.includes('sd_fp8'));

  it('fetches three ranges on three connections; the bytes are identical and the sha256 checked', async () => {
    const s = await downloadModels(seg());
    expect(s.ok).toBe(true);
    expect(onDisk('diffusion_models/sd_fp8.safetensors').equals(data.fp8)).toBe(true);
    const ranges = fp8Gets()
      .map((r) => r.range)
      .sort();
    const third = Math.ceil(data.fp8.length / 3);
    expect(ranges).toEqual([`bytes=0-${third - 1}`, `bytes=${third}-${2 * third - 1}`, `bytes=${2 * third}-${data.fp8.length - 1}`].sort());
    expect(fp8Gets().every((r) => r.status === 206 && r.authorization === undefined)).toBe(true);
    expect(leftovers().filter((f) => f.includes('.part'))).toEqual([]);
    // the VAE (2 MiB) is above segmentMinBytes too; both small and large paths end verified
    expect(JSON.parse(readFileSync(join(dest, VERIFIED_FILE), 'utf8')).files['diffusion_models/sd_fp8.safetensors'].sha256).toBe(sha256(data.fp8));
  });

  it('a range whose connection drops is resumed inside that range', async () => {
    hub.files.get(fp8Key)!.dropAfterBytes = { bytes: 300_000, times: 1 };
    const o = seg();
    const s = await downloadModels(o);
    expect(s.ok).toBe(true);
    expect(onDisk('diffusion_models/sd_fp8.safetensors').equals(data.fp8)).toBe(true);
    expect(fp8Gets()).toHaveLength(4);
    expect(o.logger.lines.some((l) => /sd_fp8.safetensors bytes \d+-\d+: network error/.test(l))).toBe(true);
  });

  it('a server that ignores Range: falls back to one connection', async () => {
    hub.files.get(fp8Key)!.ignoreRange = true;
    const o = seg();
    const s = await downloadModels(o);
    expect(s.ok).toBe(true);
    expect(onDisk('diffusion_models/sd_fp8.safetensors').equals(data.fp8)).toBe(true);
    expect(o.logger.lines.some((l) => l.includes('answered 200 to a Range request: downloading over one connection'))).toBe(true);
  });

  it('a wrong body over ranges: sha256 error, nothing under the final name, no .part or range record left', async () => {
    hub.files.get(fp8Key)!.corruptWith = randomBytes(data.fp8.length);
    const s = await downloadModels(seg());
    expect(s.files[0]!.error!.code).toBe('E_CHECKSUM');
    expect(leftovers().filter((f) => f.includes('sd_fp8'))).toEqual([]);
  });

  it('an interrupted ranged download resumes from its range record', async () => {
    // Every range drops after 500 kB and there are no retries: a .part with its range record stays.
    hub.files.get(fp8Key)!.dropAfterBytes = { bytes: 500_000, times: 3 };
    const first = await downloadModels(seg({ retries: 0 }));
    expect(first.ok).toBe(false);
    expect(leftovers()).toContain('diffusion_models/sd_fp8.safetensors.part.segments.json');
    // (the first range to fail stops the others, so each range holds up to 500 kB)
    const record = JSON.parse(readFileSync(join(dest, 'diffusion_models/sd_fp8.safetensors.part.segments.json'), 'utf8')) as { segments: { start: number; end: number; done: number }[] };
    const done = record.segments.reduce((s, g) => s + g.done, 0);
    expect(done).toBeGreaterThan(0);
    hub.log.length = 0;
    const second = await downloadModels(seg());
    expect(second.ok).toBe(true);
    expect(onDisk('diffusion_models/sd_fp8.safetensors').equals(data.fp8)).toBe(true);
    expect(
      fp8Gets()
        .map((r) => r.range)
        .sort(),
    ).toEqual(
      record.segments
        .filter((g) => g.start + g.done <= g.end)
        .map((g) => `bytes=${g.start + g.done}-${g.end}`)
        .sort(),
    );
    expect(second.files[0]!.downloadedBytes).toBe(data.fp8.length - done);
  });
});

describe('models check', () => {
  it('a row per file: ok with size and sha256', async () => {
    const r = await checkModels({ manifest: testManifest(), variant: 'fp8', hub: hubConfig({ HF_ENDPOINT: hub.hubUrl }) });
    expect(r.ok).toBe(true);
    expect(r.exitCode).toBe(0);
    expect(r.rows.map((x) => [x.id, x.status])).toEqual([
      ['sd-fp8', 'ok'],
      ['vae', 'ok'],
      ['lora', 'ok'],
    ]);
    expect(r.rows[0]).toMatchObject({ size: data.fp8.length, sha256: sha256(data.fp8), commit: COMMIT });
    expect(hub.requests('cdn')).toHaveLength(0);
  });

  it('missing, gated and fallback: fp8 gone → fp16 named as the fallback', async () => {
    hub.files.delete(fp8Key);
    hub.files.get('Comfy-Org/Wan_2.1_ComfyUI_repackaged/split_files/vae/wan_2.1_vae.safetensors')!.gated = true;
    const r = await checkModels({ manifest: testManifest(), variant: 'fp8', hub: hubConfig({ HF_ENDPOINT: hub.hubUrl }) });
    const st = Object.fromEntries(r.rows.map((x) => [x.id, x.status]));
    expect(st).toEqual({ 'sd-fp8': 'missing', vae: 'gated', lora: 'ok', 'sd-fp16': 'ok' });
    expect(r.fallback).toMatchObject({ from: 'fp8', to: 'fp16' });
    expect(r.chosenVariant).toBeNull(); // the gated VAE blocks fp16 too
    expect(r.exitCode).toBe(1);
    expect(r.rows.find((x) => x.id === 'vae')!.hint).toContain('set HF_TOKEN');
  });

  it('fp8 gone, everything else there → fp16 chosen, exit 0', async () => {
    hub.files.delete(fp8Key);
    const r = await checkModels({ manifest: testManifest(), variant: 'fp8', hub: hubConfig({ HF_ENDPOINT: hub.hubUrl }) });
    expect(r.chosenVariant).toBe('fp16');
    expect(r.exitCode).toBe(0);
  });

  it('HF_HUB_OFFLINE: every row says offline, nothing is asked, exit 3', async () => {
    const r = await checkModels({ manifest: testManifest(), variant: 'fp8', hub: hubConfig({ HF_ENDPOINT: hub.hubUrl, HF_HUB_OFFLINE: 'true' }) });
    expect(r.rows.every((x) => x.status === 'offline')).toBe(true);
    expect(r.rows[0]!.message).toContain('HF_HUB_OFFLINE is set');
    expect(r.exitCode).toBe(3);
    expect(hub.log).toHaveLength(0);
  });

  it('size in the manifest differs from the Hub: mismatch', async () => {
    const m = testManifest((d) => (d.files['sd-fp8'].size = 5));
    const r = await checkModels({ manifest: m, variant: 'fp8', hub: hubConfig({ HF_ENDPOINT: hub.hubUrl }) });
    expect(r.rows[0]!.status).toBe('mismatch');
    expect(r.rows[0]!.message).toContain(`the Hub has ${data.fp8.length} bytes, the manifest says 5`);
    expect(r.exitCode).toBe(1);
  });
});

describe('the CLI (runCli) on loopback', () => {
  async function cli(argv: string[], env: NodeJS.ProcessEnv) {
    const c = captureCli({ HOME: dest, PATH: process.env.PATH, ...env });
    const code = await runCli(argv, { ...c.io, cwd: dest });
    return { code, out: c.out.join('\n'), err: c.err.join('') };
  }

  it('models check against an unreachable port: a network error per file, exit 3, no stack', async () => {
    const port = await deadPort();
    const r = await cli(['models', 'check'], { HF_ENDPOINT: `http://127.0.0.1:${port}` });
    expect(r.code).toBe(3);
    const rows = r.out.split('\n').filter((l) => l.trimStart().startsWith('NETWORK'));
    expect(rows.length).toBeGreaterThanOrEqual(7); // every file of the real fp8 variant
    expect(r.out).toContain(`network error reaching 127.0.0.1:${port}: connection refused (ECONNREFUSED)`);
    expect(r.out).toContain('could not check');
    expect(r.out + r.err).not.toMatch(/\n\s+at /);
    expect(r.err).not.toContain('internal error');
  });

  it('--json check is one document with a row per file', async () => {
    const port = await deadPort();
    const r = await cli(['models', 'check', '--variant', 'fp16', '--json'], { HF_ENDPOINT: `http://127.0.0.1:${port}` });
    const doc = JSON.parse(r.out);
    expect(doc.requestedVariant).toBe('fp16');
    expect(doc.rows.every((x: { status: string }) => x.status === 'network')).toBe(true);
    expect(r.code).toBe(3);
  });

  it('the token never appears in logs or --json output, even on failures', async () => {
    const token = hub.token;
    const manifestPath = join(dest, 'm.json');
    hub.files.get(fp8Key)!.corruptWith = randomBytes(data.fp8.length);
    const m = testManifest();
    writeFileSync(manifestPath, JSON.stringify(m));
    const env = { HF_ENDPOINT: hub.hubUrl, HF_TOKEN: token, STEADYDANCER_PROGRESS_INTERVAL_MS: '5' };
    const d = await cli(['models', 'download', '--manifest', manifestPath, '--dest', join(dest, 'm'), '--json', '--retries', '0', '-v'], env);
    expect(d.code).toBe(1);
    expect(JSON.parse(d.out).files[0].error.code).toBe('E_CHECKSUM');
    const c = await cli(['models', 'check', '--manifest', manifestPath, '--json', '-v'], env);
    expect(JSON.parse(c.out).tokenSource).toBe('HF_TOKEN');
    hub.files.get(fp8Key)!.gated = true;
    const g = await cli(['models', 'download', '--manifest', manifestPath, '--dest', join(dest, 'g'), '--no-fallback', '-v'], { ...env, HF_TOKEN: 'hf_wrong_secret_token' });
    expect(g.code).toBe(1);
    expect(g.err).toContain('HTTP 403');
    for (const text of [d.out, d.err, c.out, c.err, g.out, g.err]) {
      expect(text).not.toContain(token);
      expect(text).not.toContain('hf_wrong_secret_token');
    }
    // and the Hub did receive it (so the test is not vacuous)
    expect(hub.requests('hub').some((r) => r.authorization === `Bearer ${token}`)).toBe(true);
  });

  it('bad flags are usage errors', async () => {
    expect((await cli(['models', 'download', '--jobs', '0', '--dest', dest], {})).err).toContain("option '--jobs <n>' argument '0' is invalid. expected a positive integer");
    const nodest = await cli(['models', 'download'], {});
    expect(nodest.code).toBe(2);
    expect(nodest.err).toContain('no destination: pass --dest DIR or set MODELS_DIR');
    const badv = await cli(['models', 'check', '--variant', 'fp4'], {});
    expect(badv.code).toBe(2);
    expect(badv.err).toContain('--variant fp4: unknown variant "fp4"');
  });
});

describe('progress bars on a terminal', () => {
  it('cli-progress bars per file and in total, ending at 100%', async () => {
    const { barProgress } = await import('../../src/models/progress.js');
    let text = '';
    const tty = Object.assign({
      write: (s: string) => ((text += s), true),
      isTTY: true,
      columns: 160,
      rows: 40,
      cursorTo: () => true,
      moveCursor: () => true,
      clearLine: () => true,
      clearScreenDown: () => true,
      on: () => tty,
      removeListener: () => tty,
    }) as unknown as NodeJS.WritableStream;
    const o = opts();
    const s = await downloadModels({ ...o, progress: barProgress(tty) });
    expect(s.ok).toBe(true);
    expect(text).toContain('total');
    expect(text).toContain('sd_fp8.safetensors');
    expect(text).toMatch(/100% \| total \| 6\.\d MB\/6\.\d MB/);
  });
});
