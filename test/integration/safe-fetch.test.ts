/**
 * SSRF-safe fetching against real HTTP servers on loopback. The SSRF cases run with the
 * block-list ON (no allowPrivateNetworks); names are mapped by a resolver injected in the test.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blockedReason, FetchLimitError, safeFetch, UnsafeUrlError, type Resolver } from '../../src/job/safe-fetch.js';

let server: Server;
let port = 0;
let hits: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    hits.push(req.url ?? '');
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname === '/img') {
      res.writeHead(200, { 'content-type': 'image/png' });
      res.end(Buffer.alloc(1000, 7));
    } else if (u.pathname === '/html') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>');
    } else if (u.pathname === '/big') {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(5_000_000) });
      res.end(Buffer.alloc(5_000_000));
    } else if (u.pathname === '/chunked-big') {
      res.writeHead(200, { 'content-type': 'image/png' });
      for (let i = 0; i < 50; i++) res.write(Buffer.alloc(100_000));
      res.end();
    } else if (u.pathname === '/slow') {
      res.writeHead(200, { 'content-type': 'image/png' });
      res.write(Buffer.alloc(10));
      setTimeout(() => res.end(Buffer.alloc(10)), 3000);
    } else if (u.pathname === '/redirect') {
      res.writeHead(302, { location: u.searchParams.get('to') ?? '/' });
      res.end();
    } else if (u.pathname === '/loop') {
      res.writeHead(302, { location: '/loop' });
      res.end();
    } else if (u.pathname === '/404') {
      res.writeHead(404);
      res.end();
    } else {
      res.writeHead(500);
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

/** A resolver standing in for DNS: names → addresses chosen by the test. */
function mapResolver(map: Record<string, string[]>): Resolver & { calls: string[] } {
  const calls: string[] = [];
  const fn = async (host: string) => {
    calls.push(host);
    const a = map[host];
    if (!a) throw new Error(`ENOTFOUND ${host}`);
    return a.map((address) => ({ address, family: (address.includes(':') ? 6 : 4) as 4 | 6 }));
  };
  return Object.assign(fn, { calls });
}

const base = { maxBytes: 1_000_000, timeoutMs: 5000, accept: ['image/'] };

describe('blockedReason', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.5.4', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'carrier-grade'],
    ['169.254.169.254', 'metadata'],
    ['169.254.1.1', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fe80::1', 'link-local'],
    ['fc00::1', 'unique local'],
    ['fd00:ec2::254', 'metadata'],
    ['::ffff:127.0.0.1', 'IPv4-mapped'],
    ['::ffff:8.8.8.8', 'IPv4-mapped'],
    ['64:ff9b::a00:1', 'NAT64'],
    ['224.0.0.1', 'multicast'],
  ])('%s is refused (%s)', (addr, why) => {
    expect(blockedReason(addr)).toMatch(new RegExp(why, 'i'));
  });
  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '2606:4700::1111', '100.128.0.1'])('%s is public', (addr) => {
    expect(blockedReason(addr)).toBeUndefined();
  });
});

describe('SSRF attempts are refused (block-list on)', () => {
  it.each([
    ['http://127.0.0.1:PORT/img', /127\.0\.0\.1.*loopback/],
    ['http://10.0.0.1/img', /10\.0\.0\.1.*private/],
    ['http://169.254.169.254/latest/meta-data/', /169\.254\.169\.254.*metadata/],
    ['http://[::1]:PORT/img', /::1.*loopback/],
    ['http://[::ffff:127.0.0.1]:PORT/img', /IPv4-mapped/],
    ['http://2130706433:PORT/img', /127\.0\.0\.1.*loopback/], // decimal form of 127.0.0.1
    ['http://0.0.0.0:PORT/img', /unspecified/],
  ])('%s', async (url, msg) => {
    hits = [];
    const err = await safeFetch(url.replace('PORT', String(port)), base).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafeUrlError);
    expect((err as Error).message).toMatch(msg);
    expect(hits).toEqual([]);
  });

  it.each([
    ['loopback.example', ['127.0.0.1'], /loopback/],
    ['private.example', ['10.0.0.1'], /private/],
    ['metadata.example', ['169.254.169.254'], /metadata/],
    ['v6.example', ['::1'], /loopback/],
    ['mixed.example', ['203.0.113.9', '127.0.0.1'], /127\.0\.0\.1.*loopback/],
  ])('a name resolving to a blocked address: %s → %s', async (host, addrs, msg) => {
    hits = [];
    const resolver = mapResolver({ [host]: addrs });
    const err = await safeFetch(`http://${host}:${port}/img`, { ...base, resolver }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafeUrlError);
    expect((err as Error).message).toMatch(msg);
    expect(hits).toEqual([]);
  });

  it('DNS rebinding: a name that is public when checked and loopback at connect time is refused at connect', async () => {
    hits = [];
    let n = 0;
    const calls: string[] = [];
    const resolver: Resolver = async (host) => {
      calls.push(host);
      n++;
      // first answer (the pre-check) public, every later answer (the connect) loopback
      return [{ address: n === 1 ? '203.0.113.7' : '127.0.0.1', family: 4 }];
    };
    const err = await safeFetch(`http://rebind.example:${port}/img`, { ...base, resolver }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafeUrlError);
    expect((err as Error).message).toMatch(/127\.0\.0\.1.*loopback/);
    expect(calls.length).toBeGreaterThanOrEqual(2); // the connect-time lookup went through our resolver
    expect(hits).toEqual([]);
  });

  it.each([
    ['http://127.0.0.1:PORT/img', /loopback/],
    ['http://10.0.0.1/img', /private/],
    ['http://169.254.169.254/latest/meta-data/iam', /metadata/],
    ['http://[::1]:PORT/img', /loopback/],
    ['http://internal.example:PORT/img', /private/],
  ])('a redirect from a trusted origin to %s is refused', async (target, msg) => {
    hits = [];
    // "cdn.example" stands in for a public server (it is exempted by the test-only option);
    // its redirect targets get the full check.
    const resolver = mapResolver({ 'cdn.example': ['127.0.0.1'], 'internal.example': ['10.1.2.3'] });
    const to = encodeURIComponent(target.replace('PORT', String(port)));
    const err = await safeFetch(`http://cdn.example:${port}/redirect?to=${to}`, { ...base, resolver, unsafeTrustedHosts: ['cdn.example'] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafeUrlError);
    expect((err as Error).message).toMatch(msg);
    expect(hits).toHaveLength(1); // only the redirect itself was served
  });

  it.each(['file:///etc/passwd', 'ftp://example.com/x', 'gopher://x/', 'http://user:pw@cdn.example/img', 'not a url'])('%s is refused', async (url) => {
    const err = await safeFetch(url, base).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafeUrlError);
  });
});

describe('limits (loopback allowed explicitly for these)', () => {
  const dev = { ...base, allowPrivateNetworks: true };
  it('fetches a body and follows a redirect', async () => {
    const r = await safeFetch(`http://127.0.0.1:${port}/redirect?to=/img`, dev);
    expect(r.bytes.length).toBe(1000);
    expect(r.contentType).toBe('image/png');
    expect(r.chain).toHaveLength(2);
  });
  it('a name from the injected resolver reaches the pinned address', async () => {
    const resolver = mapResolver({ 'media.example': ['127.0.0.1'] });
    const r = await safeFetch(`http://media.example:${port}/img`, { ...dev, resolver });
    expect(r.bytes.length).toBe(1000);
    expect(resolver.calls).toContain('media.example');
  });
  it('refuses a wrong content type', async () => {
    await expect(safeFetch(`http://127.0.0.1:${port}/html`, dev)).rejects.toThrow(/content type "text\/html" is not accepted/);
  });
  it('refuses a declared length over the limit', async () => {
    await expect(safeFetch(`http://127.0.0.1:${port}/big`, dev)).rejects.toThrow(/5000000 bytes, over the limit/);
  });
  it('stops a streamed body over the limit', async () => {
    await expect(safeFetch(`http://127.0.0.1:${port}/chunked-big`, dev)).rejects.toThrow(/exceeds the limit/);
  });
  it('stops after the time limit', async () => {
    const err = await safeFetch(`http://127.0.0.1:${port}/slow`, { ...dev, timeoutMs: 500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FetchLimitError);
    expect((err as Error).message).toMatch(/longer than 500 ms/);
  });
  it('stops a redirect loop', async () => {
    await expect(safeFetch(`http://127.0.0.1:${port}/loop`, dev)).rejects.toThrow(/more than 5 redirects/);
  });
  it('reports an HTTP error status', async () => {
    await expect(safeFetch(`http://127.0.0.1:${port}/404`, dev)).rejects.toThrow(/HTTP 404/);
  });
});
