/**
 * Hugging Face Hub metadata with the Hub's own semantics:
 *   HEAD {endpoint}/{repo}/resolve/{revision}/{path}
 * answers 302 to a CDN host for LFS files, carrying X-Linked-Size, X-Linked-Etag (the sha256),
 * X-Repo-Commit and Location. We read them from that first response without following it.
 * The token goes to the Hub's own origin only, never to a redirect target on another host.
 * HF_ENDPOINT (mirrors) and HF_HUB_OFFLINE are honoured.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Agent, request, type Dispatcher } from 'undici';
import { ActionableError } from '../util/errors.js';
import { registerSecret } from '../util/logger.js';
import { resolveUrl, type Manifest, type ManifestFileSpec } from './manifest.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
/** Where BuildKit mounts `--secret id=hf_token`. */
export const BUILDKIT_TOKEN_PATH = '/run/secrets/hf_token';
const USER_AGENT = 'steadydancer-runpod (models)';

export interface HubConfig {
  endpoint: string;
  offline: boolean;
  /** Never printed; registered with the logger's redaction. */
  token: string | undefined;
  /** Where the token came from (for messages): "HF_TOKEN", a file path, or undefined. */
  tokenSource: string | undefined;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);

export interface HubConfigOptions {
  manifest?: Pick<Manifest, 'hub'>;
  /** Read the token from this file (e.g. the BuildKit secret); overrides HF_TOKEN. */
  tokenFile?: string;
  timeouts?: Partial<Pick<HubConfig, 'connectTimeoutMs' | 'headersTimeoutMs' | 'bodyTimeoutMs'>>;
}

/**
 * The Hub settings from the environment: HF_ENDPOINT, HF_HUB_OFFLINE, and the token from
 * (in order) --token-file, HF_TOKEN, HF_TOKEN_PATH, the BuildKit secret, ~/.cache/huggingface/token.
 */
export function hubConfig(env: NodeJS.ProcessEnv, opts: HubConfigOptions = {}): HubConfig {
  const endpoint = (env.HF_ENDPOINT || opts.manifest?.hub.endpoint || DEFAULT_ENDPOINT).replace(/\/+$/, '');
  try {
    const u = new URL(endpoint);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    throw new ActionableError(`HF_ENDPOINT "${endpoint}" is not an http(s) URL`, { code: 'E_USAGE', exitCode: 2, hint: 'e.g. HF_ENDPOINT=https://hf-mirror.com, or unset it' });
  }
  let token: string | undefined;
  let tokenSource: string | undefined;
  const fromFile = (p: string, required: boolean) => {
    try {
      const t = readFileSync(p, 'utf8').trim();
      if (t) {
        token = t;
        tokenSource = p;
      }
    } catch (err) {
      if (required) throw new ActionableError(`cannot read the token file ${p}: ${(err as NodeJS.ErrnoException).code ?? err}`, { code: 'E_TOKEN', exitCode: 2 });
    }
  };
  if (opts.tokenFile) fromFile(opts.tokenFile, true);
  else if (env.HF_TOKEN?.trim()) {
    token = env.HF_TOKEN.trim();
    tokenSource = 'HF_TOKEN';
  } else if (env.HF_TOKEN_PATH) fromFile(env.HF_TOKEN_PATH, false);
  else if (existsSync(BUILDKIT_TOKEN_PATH)) fromFile(BUILDKIT_TOKEN_PATH, false);
  else if (env.HOME || homedir()) fromFile(join(env.HF_HOME || join(env.HOME || homedir(), '.cache', 'huggingface'), 'token'), false);
  registerSecret(token);
  return {
    endpoint,
    offline: TRUE.has((env.HF_HUB_OFFLINE ?? '').trim().toLowerCase()),
    token,
    tokenSource,
    connectTimeoutMs: opts.timeouts?.connectTimeoutMs ?? 10_000,
    headersTimeoutMs: opts.timeouts?.headersTimeoutMs ?? 30_000,
    bodyTimeoutMs: opts.timeouts?.bodyTimeoutMs ?? 60_000,
  };
}

/** One undici agent per operation, with our timeouts. Redirects are never followed by it. */
export function createAgent(cfg: Pick<HubConfig, 'connectTimeoutMs' | 'headersTimeoutMs' | 'bodyTimeoutMs'>): Agent {
  return new Agent({
    connect: { timeout: cfg.connectTimeoutMs },
    headersTimeout: cfg.headersTimeoutMs,
    bodyTimeout: cfg.bodyTimeoutMs,
  });
}

/** Headers for a request to `url`: Authorization only when `url` is on the Hub's own origin. */
export function requestHeaders(cfg: Pick<HubConfig, 'endpoint' | 'token'>, url: string, extra: Record<string, string> = {}): Record<string, string> {
  const h: Record<string, string> = { 'user-agent': USER_AGENT, 'accept-encoding': 'identity', ...extra };
  if (cfg.token && sameOrigin(url, cfg.endpoint)) h.authorization = `Bearer ${cfg.token}`;
  return h;
}

export function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

export type HubErrorKind = 'missing' | 'gated' | 'network' | 'offline' | 'server' | 'checksum' | 'size' | 'disk' | 'protocol';

/** A Hub/CDN failure the user can act on; `kind` drives status rows, retries and fallback. */
export class HubError extends ActionableError {
  constructor(
    readonly kind: HubErrorKind,
    message: string,
    opts: { hint?: string; status?: number; cause?: unknown } = {},
  ) {
    super(message, { hint: opts.hint, code: `E_${kind.toUpperCase()}`, exitCode: kind === 'network' || kind === 'server' ? 3 : 1, cause: opts.cause });
    this.name = 'HubError';
    this.status = opts.status;
  }
  readonly status: number | undefined;
  /** Worth another attempt: drops, timeouts, 5xx, 429. */
  get retryable(): boolean {
    return this.kind === 'network' || this.kind === 'server';
  }
}

const NET_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found (DNS)',
  EAI_AGAIN: 'DNS lookup failed (temporary)',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'connection closed',
  UND_ERR_CONNECT_TIMEOUT: 'connect timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no response headers in time',
  UND_ERR_BODY_TIMEOUT: 'body stalled (read timeout)',
  UND_ERR_SOCKET: 'connection dropped',
  UND_ERR_CLOSED: 'connection closed',
  ECONNABORTED: 'connection aborted',
};

/** Turn a low-level error (undici, socket, DNS) into a network HubError naming the host. */
export function networkError(err: unknown, url: string): HubError {
  if (err instanceof HubError) return err;
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e?.code ?? e?.cause?.code ?? '';
  const what = NET_CODES[code] ?? (e?.message || String(err));
  let host = url;
  try {
    host = new URL(url).host;
  } catch {
    /* keep url */
  }
  return new HubError('network', `network error reaching ${host}: ${what}${code ? ` (${code})` : ''}`, {
    hint: 'check the connection (or HF_ENDPOINT for a mirror); set HF_HUB_OFFLINE=1 to use only files already on disk',
    cause: err,
  });
}

/** The HubError for an HTTP status from the Hub or the CDN. */
export function statusError(
  status: number,
  headers: Record<string, string | string[] | undefined>,
  file: Pick<ManifestFileSpec, 'repo' | 'path'>,
  endpoint: string,
  hasToken: boolean,
  where = 'the Hub',
): HubError {
  const errCode = String(headers['x-error-code'] ?? '');
  const page = `${endpoint}/${file.repo}`;
  const name = `${file.repo}/${file.path}`;
  if (status === 404 || errCode === 'RepoNotFound' || errCode === 'EntryNotFound' || errCode === 'RevisionNotFound') {
    return new HubError('missing', `missing: ${name} is not on ${where} (HTTP ${status}${errCode ? ` ${errCode}` : ''})`, {
      status,
      hint: `check the repo, revision and path in docker/models.json against ${page}`,
    });
  }
  if (status === 401 || status === 403) {
    const why = status === 401 ? (hasToken ? 'the token was not accepted' : 'it needs a Hugging Face token') : 'the token has no access (licence not accepted?)';
    return new HubError('gated', `gated: ${name} refused with HTTP ${status}: ${why}`, {
      status,
      hint: `set HF_TOKEN (or mount the BuildKit secret hf_token) and accept the licence on ${page}`,
    });
  }
  if (status === 429 || status >= 500) {
    return new HubError('server', `server error from ${where} for ${name}: HTTP ${status}`, { status, hint: 'transient: it is retried; try again later if it persists' });
  }
  return new HubError('protocol', `unexpected HTTP ${status} from ${where} for ${name}`, { status });
}

export interface RemoteMetadata {
  /** The resolve URL we asked. */
  url: string;
  /** Where the bytes are: the CDN Location for LFS files, else the resolve URL. */
  downloadUrl: string;
  size: number | null;
  /** sha256 when the Hub gives one (X-Linked-Etag of LFS files). */
  sha256: string | null;
  etag: string | null;
  commit: string | null;
}

function header(h: Record<string, string | string[] | undefined>, name: string): string | null {
  const v = h[name];
  if (v === undefined) return null;
  return Array.isArray(v) ? (v[0] ?? null) : v;
}

function unquoteEtag(e: string | null): string | null {
  if (!e) return null;
  return e.replace(/^W\//, '').replace(/^"|"$/g, '');
}

/**
 * HEAD the resolve URL and read the file's metadata from the first response. Relative (same
 * origin) redirects without X-Linked-* headers are followed (renamed repos), up to 5.
 */
export async function fetchMetadata(
  cfg: HubConfig,
  file: Pick<ManifestFileSpec, 'repo' | 'revision' | 'commit' | 'path'>,
  opts: { dispatcher?: Dispatcher; signal?: AbortSignal } = {},
): Promise<RemoteMetadata> {
  if (cfg.offline) throw new HubError('offline', `HF_HUB_OFFLINE is set: not asking the Hub about ${file.repo}/${file.path}`, { hint: 'unset HF_HUB_OFFLINE to reach the Hub' });
  const first = resolveUrl(cfg.endpoint, file);
  const agent = opts.dispatcher ?? createAgent(cfg);
  try {
    let url = first;
    for (let hop = 0; hop <= 5; hop++) {
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, { method: 'HEAD', headers: requestHeaders(cfg, url), dispatcher: agent, signal: opts.signal });
      } catch (err) {
        if (opts.signal?.aborted) throw err;
        throw networkError(err, url);
      }
      await res.body.dump();
      const h = res.headers;
      const linkedSize = header(h, 'x-linked-size');
      const linkedEtag = unquoteEtag(header(h, 'x-linked-etag'));
      const commit = header(h, 'x-repo-commit');
      const location = header(h, 'location');
      if (res.statusCode >= 300 && res.statusCode < 400 && location) {
        const target = new URL(location, url).toString();
        if (linkedSize === null && sameOrigin(target, url)) {
          url = target; // a relative redirect inside the Hub: follow it, token and all
          continue;
        }
        return {
          url: first,
          downloadUrl: target,
          size: linkedSize !== null ? parseSize(linkedSize, file) : null,
          sha256: linkedEtag && /^[0-9a-f]{64}$/.test(linkedEtag) ? linkedEtag : null,
          etag: linkedEtag,
          commit,
        };
      }
      if (res.statusCode >= 200 && res.statusCode < 300) {
        const len = linkedSize ?? header(h, 'content-length');
        const etag = linkedEtag ?? unquoteEtag(header(h, 'etag'));
        return {
          url: first,
          downloadUrl: url,
          size: len !== null ? parseSize(len, file) : null,
          sha256: etag && /^[0-9a-f]{64}$/.test(etag) ? etag : null,
          etag,
          commit,
        };
      }
      throw statusError(res.statusCode, h, file, cfg.endpoint, Boolean(cfg.token));
    }
    throw new HubError('protocol', `too many redirects resolving ${file.repo}/${file.path}`);
  } finally {
    if (!opts.dispatcher) await agent.close();
  }
}

function parseSize(v: string, file: Pick<ManifestFileSpec, 'repo' | 'path'>): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new HubError('protocol', `the Hub sent an invalid size "${v}" for ${file.repo}/${file.path}`);
  return n;
}
