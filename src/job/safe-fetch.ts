/**
 * SSRF-safe download of job inputs given as URLs.
 *
 * A job may name an `image` or `video` by URL; the worker runs inside a cloud network where
 * loopback services (ComfyUI on 127.0.0.1), private subnets and the metadata endpoint
 * (169.254.169.254) must never be reachable through a job. The rules:
 *  - http(s) only; no credentials in the URL;
 *  - the host's addresses are resolved and EVERY one must be public (not loopback, private,
 *    CGNAT, link-local, metadata, unspecified, multicast/reserved, IPv4-mapped/NAT64/6to4 IPv6);
 *  - the connection goes to the address that was checked: the undici dispatcher gets a
 *    `connect.lookup` that resolves and checks at connect time and hands the checked address to
 *    net/tls.connect, so a name that re-resolves to 127.0.0.1 later (DNS rebinding) cannot slip by;
 *  - redirects are followed by hand (at most `maxRedirects`), each target checked the same way;
 *  - a size limit (Content-Length up front, counted bytes while streaming), a total time limit,
 *    and a content-type check.
 * The block-list is bypassed only with `allowPrivateNetworks: true`, an explicit programmatic
 * option (tests and local development; the CLI maps the documented-unsafe environment variable
 * STEADYDANCER_UNSAFE_ALLOW_PRIVATE_URLS=1 onto it). Node's own net.BlockList does the
 * subnet matching, so no CIDR maths is hand-written here.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { Agent, request, type Dispatcher } from 'undici';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}
/** Resolves a host name to all its addresses (injectable: tests map names to loopback). */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (hostname) => {
  const rows = await dnsLookup(hostname, { all: true, verbatim: true });
  return rows.map((r) => ({ address: r.address, family: r.family === 6 ? 6 : 4 }));
};

/** Why an address is refused, or undefined when it is a public unicast address. */
const BLOCKED: Array<[string, number, 'ipv4' | 'ipv6', string]> = [
  ['0.0.0.0', 8, 'ipv4', 'unspecified/"this network"'],
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['10.0.0.0', 8, 'ipv4', 'private'],
  ['172.16.0.0', 12, 'ipv4', 'private'],
  ['192.168.0.0', 16, 'ipv4', 'private'],
  ['100.64.0.0', 10, 'ipv4', 'carrier-grade NAT (shared)'],
  ['169.254.0.0', 16, 'ipv4', 'link-local / cloud metadata'],
  ['192.0.0.0', 24, 'ipv4', 'IETF protocol assignments'],
  ['198.18.0.0', 15, 'ipv4', 'benchmarking'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['240.0.0.0', 4, 'ipv4', 'reserved/broadcast'],
  ['::', 128, 'ipv6', 'unspecified'],
  ['::1', 128, 'ipv6', 'loopback'],
  ['::ffff:0:0', 96, 'ipv6', 'IPv4-mapped IPv6'],
  ['::', 96, 'ipv6', 'IPv4-compatible IPv6'],
  ['64:ff9b::', 96, 'ipv6', 'NAT64 (embeds an IPv4 address)'],
  ['64:ff9b:1::', 48, 'ipv6', 'local NAT64'],
  ['2002::', 16, 'ipv6', '6to4 (embeds an IPv4 address)'],
  ['fc00::', 7, 'ipv6', 'unique local (private); includes the fd00:ec2::254 metadata address'],
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['fec0::', 10, 'ipv6', 'site-local (deprecated)'],
  ['ff00::', 8, 'ipv6', 'multicast'],
  ['100::', 64, 'ipv6', 'discard-only'],
];
const lists = BLOCKED.map(([net, prefix, type, why]) => {
  const b = new BlockList();
  b.addSubnet(net, prefix, type);
  return { b, type, why, cidr: `${net}/${prefix}` };
});

/** The reason `address` may not be fetched from, or undefined if it is public. */
export function blockedReason(address: string): string | undefined {
  const fam = isIP(address);
  if (fam === 0) return 'not an IP address';
  const type = fam === 4 ? 'ipv4' : 'ipv6';
  if (address === '169.254.169.254' || address.toLowerCase() === 'fd00:ec2::254') return 'cloud metadata endpoint';
  for (const l of lists) if (l.type === type && l.b.check(address, type)) return `${l.why} (${l.cidr})`;
  return undefined;
}

export class UnsafeUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafeUrlError';
  }
}
export class FetchLimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FetchLimitError';
  }
}

export interface SafeFetchOptions {
  /** Bytes; the download stops with an error beyond this. */
  maxBytes: number;
  /** Total time for the whole download (all redirects and the body), ms. */
  timeoutMs: number;
  /** Content types accepted (prefix match, e.g. "image/"); empty = any. */
  accept: string[];
  maxRedirects?: number;
  resolver?: Resolver;
  /** UNSAFE: skip the address block-list (tests on loopback, local development only). */
  allowPrivateNetworks?: boolean;
  /**
   * UNSAFE, tests only: host names exempt from the block-list (e.g. a name the test's resolver
   * maps to its loopback server, standing in for a public CDN whose redirects are then checked).
   */
  unsafeTrustedHosts?: string[];
  signal?: AbortSignal;
}

export interface FetchedBody {
  bytes: Buffer;
  contentType: string;
  /** The final URL after redirects. */
  url: string;
  /** Every URL visited, first to last. */
  chain: string[];
}

function hostOf(u: URL): string {
  return u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
}

function checkUrlShape(u: URL): void {
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new UnsafeUrlError(`only http(s) URLs are accepted, not ${u.protocol}`);
  if (u.username || u.password) throw new UnsafeUrlError('URLs with credentials (user:pass@) are not accepted');
}

/** Resolve and check all addresses; returns the ones allowed (all of them) or throws. */
async function resolveChecked(hostname: string, resolver: Resolver, allowPrivate: boolean | ((host: string) => boolean)): Promise<ResolvedAddress[]> {
  const fam = isIP(hostname);
  const addrs: ResolvedAddress[] = fam ? [{ address: hostname, family: fam === 6 ? 6 : 4 }] : await resolver(hostname);
  if (addrs.length === 0) throw new UnsafeUrlError(`${hostname} does not resolve to any address`);
  if (!(typeof allowPrivate === 'function' ? allowPrivate(hostname) : allowPrivate)) {
    for (const a of addrs) {
      const why = blockedReason(a.address);
      if (why) throw new UnsafeUrlError(`${hostname} resolves to ${a.address}, a ${why} address; only public addresses may be fetched`);
    }
  }
  return addrs;
}

/** A dispatcher whose every connection goes to an address that passed the check. */
export function pinnedDispatcher(resolver: Resolver, allowPrivate: boolean | ((host: string) => boolean), timeoutMs: number): Agent {
  const lookup: LookupFunction = (hostname, options, callback) => {
    const cb = callback as unknown as (err: Error | null, address: string | Array<{ address: string; family: number }>, family?: number) => void;
    resolveChecked(hostname, resolver, allowPrivate).then(
      (addrs) => {
        const wanted = options.family === 4 || options.family === 6 ? addrs.filter((a) => a.family === options.family) : addrs;
        const pick = wanted.length ? wanted : addrs;
        if (options.all)
          cb(
            null,
            pick.map((a) => ({ address: a.address, family: a.family })),
          );
        else cb(null, pick[0]!.address, pick[0]!.family);
      },
      (err: Error) => cb(err, ''),
    );
  };
  return new Agent({ connect: { lookup, timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
}

/**
 * Download `url` under the rules above. Errors: UnsafeUrlError (a refused address or scheme),
 * FetchLimitError (size, time, status, content type).
 */
export async function safeFetch(url: string, opts: SafeFetchOptions): Promise<FetchedBody> {
  const resolver = opts.resolver ?? systemResolver;
  const trusted = new Set((opts.unsafeTrustedHosts ?? []).map((h) => h.toLowerCase()));
  const allowPrivate = opts.allowPrivateNetworks === true ? true : (host: string) => trusted.has(host.toLowerCase());
  const maxRedirects = opts.maxRedirects ?? 5;
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const dispatcher: Dispatcher = pinnedDispatcher(resolver, allowPrivate, opts.timeoutMs);
  const chain: string[] = [];
  let current: URL;
  try {
    current = new URL(url);
  } catch {
    throw new UnsafeUrlError('not a valid URL');
  }
  try {
    for (let hop = 0; ; hop++) {
      checkUrlShape(current);
      chain.push(current.href);
      // Checked here for a clear error before connecting; checked again by the dispatcher's
      // lookup at connect time (the address actually used).
      await resolveChecked(hostOf(current), resolver, allowPrivate);
      const res = await request(current, { method: 'GET', dispatcher, signal, headers: { accept: opts.accept.join(', ') || '*/*' } });
      if (res.statusCode >= 300 && res.statusCode < 400 && res.headers.location) {
        await res.body.dump();
        if (hop >= maxRedirects) throw new FetchLimitError(`more than ${maxRedirects} redirects`);
        const loc = Array.isArray(res.headers.location) ? res.headers.location[0]! : res.headers.location;
        current = new URL(loc, current);
        continue;
      }
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new FetchLimitError(`the server answered HTTP ${res.statusCode}`);
      }
      const ctRaw = res.headers['content-type'];
      const contentType = (Array.isArray(ctRaw) ? ctRaw[0] : ctRaw)?.split(';')[0]?.trim().toLowerCase() ?? '';
      if (opts.accept.length && !opts.accept.some((a) => contentType.startsWith(a))) {
        await res.body.dump();
        throw new FetchLimitError(`content type "${contentType || '(none)'}" is not accepted (expected ${opts.accept.join(' or ')})`);
      }
      const lenRaw = res.headers['content-length'];
      const declared = Number(Array.isArray(lenRaw) ? lenRaw[0] : lenRaw);
      if (Number.isFinite(declared) && declared > opts.maxBytes) {
        res.body.destroy();
        throw new FetchLimitError(`the body is ${declared} bytes, over the limit of ${opts.maxBytes}`);
      }
      const parts: Buffer[] = [];
      let total = 0;
      for await (const chunk of res.body) {
        total += (chunk as Buffer).length;
        if (total > opts.maxBytes) {
          res.body.destroy();
          throw new FetchLimitError(`the body exceeds the limit of ${opts.maxBytes} bytes`);
        }
        parts.push(chunk as Buffer);
      }
      return { bytes: Buffer.concat(parts), contentType, url: current.href, chain };
    }
  } catch (err) {
    if (err instanceof UnsafeUrlError || err instanceof FetchLimitError) throw err;
    if (timeout.aborted) throw new FetchLimitError(`the download took longer than ${opts.timeoutMs} ms`);
    if (opts.signal?.aborted) throw err;
    // The dispatcher's lookup raises UnsafeUrlError inside undici: surface it unwrapped.
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof UnsafeUrlError) throw cause;
    if (err instanceof Error && err.name === 'UnsafeUrlError') throw err;
    throw new FetchLimitError(`download failed: ${(err as Error).message}`);
  } finally {
    void (dispatcher as Agent).close().catch(() => undefined);
  }
}
