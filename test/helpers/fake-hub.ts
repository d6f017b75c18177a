/**
 * A Hugging Face Hub stand-in on loopback, for the model tests: a "hub" server answering
 * /{repo}/resolve/{rev}/{path} like the Hub (302 to a CDN with X-Linked-Size / X-Linked-Etag /
 * X-Repo-Commit for LFS files, 401/403 for gated repos, 404 with X-Error-Code) and a "cdn"
 * server on another port that serves the bytes with Range support — and refuses any request
 * carrying an Authorization header, as S3-style CDNs do. Behaviours per file are switches.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface FakeFile {
  data: Buffer;
  /** Served as an LFS file (302 to the CDN). Default true. */
  lfs?: boolean;
  /** Requires `Authorization: Bearer <token>`: 401 without, 403 with another token. */
  gated?: boolean;
  /** Override the size the Hub announces (X-Linked-Size). */
  announceSize?: number;
  /** CDN behaviours (each counts down per CDN GET of this file). */
  dropAfterBytes?: { bytes: number; times: number };
  stallAfterBytes?: { bytes: number; times: number };
  status5xx?: { status: number; times: number };
  expireLink?: { times: number };
  unsatisfiableRange?: { times: number };
  ignoreRange?: boolean;
  /** Serve these bytes instead of `data` (the Hub still announces data's sha256). */
  corruptWith?: Buffer;
}

export interface LoggedRequest {
  server: 'hub' | 'cdn';
  method: string;
  url: string;
  range: string | undefined;
  authorization: string | undefined;
  status: number;
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
export const COMMIT = 'c0ffee0000000000000000000000000000000001';

export class FakeHub {
  readonly files = new Map<string, FakeFile>();
  readonly log: LoggedRequest[] = [];
  token = 'hf_test_token_0123456789';
  private hub!: Server;
  private cdn!: Server;
  private sockets = new Set<Socket>();
  private stalled = new Set<ServerResponse>();
  hubUrl = '';
  cdnUrl = '';

  /** Register a file under `repo` at `path` (any revision resolves). */
  add(repo: string, path: string, file: FakeFile): this {
    this.files.set(`${repo}/${path}`, file);
    return this;
  }

  async start(): Promise<this> {
    this.hub = createServer((req, res) => this.onHub(req, res));
    this.cdn = createServer((req, res) => this.onCdn(req, res));
    for (const s of [this.hub, this.cdn]) {
      s.on('connection', (sock) => {
        this.sockets.add(sock);
        sock.on('close', () => this.sockets.delete(sock));
      });
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    }
    this.hubUrl = `http://127.0.0.1:${(this.hub.address() as AddressInfo).port}`;
    this.cdnUrl = `http://127.0.0.1:${(this.cdn.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const r of this.stalled) r.destroy();
    for (const s of this.sockets) s.destroy();
    await Promise.all([this.hub, this.cdn].map((s) => new Promise<void>((r) => s.close(() => r()))));
  }

  requests(server: 'hub' | 'cdn', method?: string): LoggedRequest[] {
    return this.log.filter((l) => l.server === server && (!method || l.method === method));
  }

  private record(server: 'hub' | 'cdn', req: IncomingMessage, status: number) {
    this.log.push({ server, method: req.method ?? '', url: req.url ?? '', range: req.headers.range, authorization: req.headers.authorization, status });
  }

  private onHub(req: IncomingMessage, res: ServerResponse) {
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(decodeURI((req.url ?? '').split('?')[0]!));
    const send = (status: number, headers: Record<string, string | number> = {}) => {
      this.record('hub', req, status);
      res.writeHead(status, headers);
      res.end();
    };
    if (!m) return send(404, { 'x-error-code': 'RepoNotFound' });
    const key = `${m[1]}/${m[3]}`;
    const f = this.files.get(key);
    if (!f) return send(404, { 'x-error-code': 'EntryNotFound' });
    if (f.gated) {
      const auth = req.headers.authorization;
      if (!auth) return send(401, { 'x-error-code': 'GatedRepo' });
      if (auth !== `Bearer ${this.token}`) return send(403, { 'x-error-code': 'GatedRepo' });
    }
    const sha = sha256(f.data);
    const size = f.announceSize ?? f.data.length;
    if (f.lfs !== false) {
      return send(302, {
        location: `${this.cdnUrl}/cdn/${encodeURIComponent(key)}?sig=abc`,
        'x-linked-size': size,
        'x-linked-etag': `"${sha}"`,
        'x-repo-commit': COMMIT,
        etag: `"${sha}"`,
        'content-length': 0,
      });
    }
    // A small non-LFS file: the Hub answers 200 itself; its ETag is a git blob id, not a sha256.
    const gitId = createHash('sha1').update(f.data).digest('hex');
    this.record('hub', req, 200);
    res.writeHead(200, { 'content-length': f.data.length, etag: `"${gitId}"`, 'x-repo-commit': COMMIT });
    if (req.method === 'HEAD') return res.end();
    res.end(f.data);
  }

  private onCdn(req: IncomingMessage, res: ServerResponse) {
    const m = /^\/cdn\/([^?]+)/.exec(req.url ?? '');
    const f = m ? this.files.get(decodeURIComponent(m[1]!)) : undefined;
    const send = (status: number, headers: Record<string, string | number> = {}, body?: string) => {
      this.record('cdn', req, status);
      res.writeHead(status, headers);
      res.end(body);
    };
    if (req.headers.authorization) return send(400, { 'content-type': 'text/plain' }, 'Only one auth mechanism allowed');
    if (!f) return send(404);
    if (f.status5xx && f.status5xx.times > 0) {
      f.status5xx.times--;
      return send(f.status5xx.status);
    }
    if (f.expireLink && f.expireLink.times > 0) {
      f.expireLink.times--;
      return send(403, { 'content-type': 'text/plain' }, 'Request has expired');
    }
    const body = f.corruptWith ?? f.data;
    let start = 0;
    let end = body.length - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range && !f.ignoreRange) {
      start = Number(range[1]);
      if (range[2]) end = Math.min(end, Number(range[2]));
      if (start >= body.length || start > end || (f.unsatisfiableRange && f.unsatisfiableRange.times-- > 0)) return send(416, { 'content-range': `bytes */${body.length}` });
      status = 206;
    }
    const slice = body.subarray(start, end + 1);
    const headers: Record<string, string | number> = { 'content-length': slice.length, 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes' };
    if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${body.length}`;
    this.record('cdn', req, status);
    res.writeHead(status, headers);
    if (f.dropAfterBytes && f.dropAfterBytes.times > 0) {
      f.dropAfterBytes.times--;
      res.write(slice.subarray(0, f.dropAfterBytes.bytes), () => res.socket?.destroy());
      return;
    }
    if (f.stallAfterBytes && f.stallAfterBytes.times > 0) {
      f.stallAfterBytes.times--;
      res.write(slice.subarray(0, f.stallAfterBytes.bytes));
      this.stalled.add(res); // never ends; the client's read timeout must fire
      return;
    }
    res.end(slice);
  }
}

/** A manifest file entry for the fake repos (size and sha256 unknown, as the Hub will say). */
export function fileEntry(repo: string, path: string, folder: string, role: string, extra: Record<string, unknown> = {}) {
  return {
    role,
    description: `test ${path}`,
    repo,
    revision: 'main',
    commit: null,
    path,
    folder,
    filename: path.split('/').pop(),
    size: null,
    sha256: null,
    verified: [],
    sources: ['test'],
    ...extra,
  };
}

/** A raw manifest document shaped like docker/models.json, pointing at the fake repos: fp8 →
 *  fp16 SteadyDancer files and a VAE; with `fastPreset`, also a LoRA and the fast preset. */
export function fakeManifestDoc(opts: { fastPreset?: boolean } = {}) {
  return {
    schemaVersion: 1,
    description: 'test',
    hub: { endpoint: 'https://huggingface.co' },
    defaultVariant: 'fp8',
    fallbackOrder: ['fp8', 'fp16'],
    files: {
      'sd-fp8': fileEntry('Kijai/WanVideo_comfy_fp8_scaled', 'SteadyDancer/sd_fp8.safetensors', 'diffusion_models', 'diffusion_model'),
      'sd-fp16': fileEntry('Kijai/WanVideo_comfy', 'SteadyDancer/sd_fp16.safetensors', 'diffusion_models', 'diffusion_model'),
      vae: fileEntry('Comfy-Org/Wan_2.1_ComfyUI_repackaged', 'split_files/vae/wan_2.1_vae.safetensors', 'vae', 'vae'),
      ...(opts.fastPreset ? { lora: fileEntry('Kijai/WanVideo_comfy', 'Lightx2v/lora.safetensors', 'loras', 'lora') } : {}),
    } as Record<string, ReturnType<typeof fileEntry>>,
    workflows: { native: { description: 'd', workflowFiles: [], requires: ['vae'], textEncoderByVariant: {}, optional: [] } },
    variants: {
      fp8: { description: 'd', diffusionModel: 'sd-fp8', workflow: 'native', fallback: 'fp16' },
      fp16: { description: 'd', diffusionModel: 'sd-fp16', workflow: 'native', fallback: null },
    },
    presets: opts.fastPreset ? { fast: { description: 'd', files: ['lora'], cfg: 1, steps: 4 } } : {},
  };
}
