/**
 * Loopback throughput of `models download` against curl.
 *
 *   npx tsx bench/models-download.bench.ts [--files 4] [--mb 768] [--runs 3] [--dir /tmp/x]
 *
 * Makes FILES files of MB MiB each (random data, disk-backed), serves them from a Hub
 * stand-in (HEAD resolve → 302 to a CDN port, like the real Hub) written here, and times:
 *   1. curl on one file (the CDN URL, -o file) — the yardstick
 *   2. our downloader on that one file, 1 connection and 4 connections (byte ranges):
 *      HEAD + GET(s) + sha256 + atomic rename
 *   3. curl on all files in parallel (curl -Z)
 *   4. our downloader on all files (jobs = FILES)
 *   5. the same work as ours done with curl: curl, then sha256sum (one file; all files with the
 *      sums in parallel) — the yardstick for a download that is verified before use
 * Both run as processes under /usr/bin/time (wall and CPU seconds). Median of RUNS; destination files are deleted between runs and everything at the end.
 * Prints a markdown table for bench/models-download.md.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { execa } from 'execa';
import { parseManifest } from '../src/models/manifest.js';

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
};
const FILES = Number(arg('files', '4'));
const MIB = Number(arg('mb', '768'));
const RUNS = Number(arg('runs', '3'));
const base = arg('dir', join(tmpdir(), `sd-bench-${process.pid}`));
const srcDir = join(base, 'src');
const MB = 1024 * 1024;

interface Served {
  name: string;
  path: string;
  size: number;
  sha256: string;
}

async function makeFiles(): Promise<Served[]> {
  mkdirSync(srcDir, { recursive: true });
  const block = randomBytes(16 * MB);
  const out: Served[] = [];
  for (let i = 0; i < FILES; i++) {
    const name = `model_${i}.safetensors`;
    const path = join(srcDir, name);
    const h = createHash('sha256');
    const ws = createWriteStream(path);
    for (let written = 0; written < MIB * MB; written += block.length) {
      // vary each block so files differ
      block.writeUInt32LE(i * 1_000_003 + written, 0);
      h.update(block);
      if (!ws.write(block)) await once(ws, 'drain');
    }
    ws.end();
    await once(ws, 'finish');
    out.push({ name, path, size: statSync(path).size, sha256: h.digest('hex') });
  }
  return out;
}

function serve(files: Served[]): Promise<{ hub: Server; cdn: Server; hubUrl: string; cdnUrl: string }> {
  const byName = new Map(files.map((f) => [f.name, f]));
  const cdn = createServer((req, res) => {
    const f = byName.get((req.url ?? '').replace(/^\/cdn\//, '').split('?')[0]!);
    if (!f) return void res.writeHead(404).end();
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    const headers: Record<string, string | number> = { 'content-length': f.size - start, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    if (m) headers['content-range'] = `bytes ${start}-${f.size - 1}/${f.size}`;
    res.writeHead(m ? 206 : 200, headers);
    createReadStream(f.path, { start, highWaterMark: 1 * MB }).pipe(res);
  });
  let cdnUrl = '';
  const hub = createServer((req, res) => {
    const name = (req.url ?? '').split('/').pop()!;
    const f = byName.get(name);
    if (!f) return void res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end();
    res.writeHead(302, { location: `${cdnUrl}/cdn/${name}`, 'x-linked-size': f.size, 'x-linked-etag': `"${f.sha256}"`, 'x-repo-commit': 'b'.repeat(40), 'content-length': 0 });
    res.end();
  });
  return new Promise((resolve) => {
    cdn.listen(0, '127.0.0.1', () => {
      cdnUrl = `http://127.0.0.1:${(cdn.address() as AddressInfo).port}`;
      hub.listen(0, '127.0.0.1', () => resolve({ hub, cdn, hubUrl: `http://127.0.0.1:${(hub.address() as AddressInfo).port}`, cdnUrl }));
    });
  });
}

function manifestFor(files: Served[]) {
  const entries = Object.fromEntries(
    files.map((f, i) => [
      `m${i}`,
      {
        role: i === 0 ? 'diffusion_model' : 'vae',
        description: 'bench',
        repo: 'bench/repo',
        revision: 'main',
        commit: null,
        path: f.name,
        folder: i === 0 ? 'diffusion_models' : 'vae',
        filename: f.name,
        size: f.size,
        sha256: f.sha256,
        verified: ['size', 'sha256'],
        sources: ['bench'],
      },
    ]),
  );
  const mk = (ids: string[]) =>
    parseManifest({
      schemaVersion: 1,
      description: 'bench',
      hub: { endpoint: 'https://huggingface.co' },
      defaultVariant: 'v',
      fallbackOrder: ['v'],
      files: entries,
      workflows: { w: { description: 'w', workflowFiles: [], requires: ids.slice(1), textEncoderByVariant: {}, optional: [] } },
      variants: { v: { description: 'v', diffusionModel: ids[0]!, workflow: 'w', fallback: null } },
      presets: {},
    });
  return { one: mk(['m0']), all: mk(files.map((_, i) => `m${i}`)) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Child mode: serve the files named in argv (JSON) and print the two URLs. */
async function serveChild() {
  const files = JSON.parse(arg('serve', '[]')) as Served[];
  const { hubUrl, cdnUrl } = await serve(files);
  process.stdout.write(JSON.stringify({ hubUrl, cdnUrl }) + '\n');
}

async function main() {
  console.error(`bench: ${FILES} × ${MIB} MiB in ${base} (${cpus().length} CPUs)`);
  const files = await makeFiles();
  // The server runs in its own process, as the Hub/CDN would: it must not share our event loop.
  const child = execa(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--serve', JSON.stringify(files)], { stdout: 'pipe', stderr: 'inherit' });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  const { hubUrl, cdnUrl } = JSON.parse(line.toString()) as { hubUrl: string; cdnUrl: string };
  const { one, all } = manifestFor(files);
  const dest = join(base, 'dest');
  const clean = () => rmSync(dest, { recursive: true, force: true });
  const totalAll = files.reduce((s, f) => s + f.size, 0);
  const size0 = files[0]!.size;

  const cli = join(new URL('..', import.meta.url).pathname, 'bin', 'steadydancer.js');
  writeFileSync(join(base, 'one.json'), JSON.stringify(one));
  writeFileSync(join(base, 'all.json'), JSON.stringify(all));
  const env = { PATH: process.env.PATH!, HOME: base, HF_ENDPOINT: hubUrl };
  /** Run a command under /usr/bin/time: wall and CPU (user+sys) seconds of the process. */
  const timed = async (cmd: string, args: string[]) => {
    clean();
    mkdirSync(dest, { recursive: true });
    const r = await execa('/usr/bin/time', ['-f', 'TIME %e %U %S', cmd, ...args], { env, extendEnv: false, reject: false });
    const m = /TIME ([\d.]+) ([\d.]+) ([\d.]+)/.exec(r.stderr);
    if (r.exitCode !== 0 || !m) throw new Error(`${cmd} failed (${r.exitCode}): ${r.stderr.slice(-2000)}\n${r.stdout.slice(-2000)}`);
    return { wall: Number(m[1]), cpu: Number(m[2]) + Number(m[3]) };
  };
  const ours = (manifest: string, jobs: number, connections: number) => [
    cli,
    'models',
    'download',
    '--manifest',
    manifest,
    '--variant',
    'v',
    '--dest',
    dest,
    '--jobs',
    String(jobs),
    '--connections',
    String(connections),
    '--no-presets',
    '-q',
  ];
  const curlN = () => {
    const args = ['-sS', '-f', '-Z', '--parallel-max', String(FILES)];
    files.forEach((f, i) => args.push('-o', join(dest, `f${i}`), `${cdnUrl}/cdn/${f.name}`));
    return args;
  };
  // curl, then sha256sum: what a verified download costs with the usual tools (one process tree
  // under /usr/bin/time, so its CPU seconds add up both)
  const curlSum1 = () => ['-c', `curl -sS -f -o ${join(dest, 'f0')} ${cdnUrl}/cdn/${files[0]!.name} && sha256sum ${join(dest, 'f0')} >/dev/null`];
  const curlSumN = () => [
    '-c',
    `curl ${curlN()
      .map((a) => `'${a}'`)
      .join(' ')} && ls ${dest}/f* | xargs -P ${FILES} -n 1 sha256sum >/dev/null`,
  ];
  const results: Record<string, { wall: number; cpu: number }[]> = { curl1: [], ours1: [], ours1c4: [], curlN: [], oursN: [], curlSum1: [], curlSumN: [] };
  for (let r = 0; r < RUNS; r++) {
    // interleaved, so that load from other processes on this machine hits both alike
    results.curl1!.push(await timed('curl', ['-sS', '-f', '-o', join(dest, 'f0'), `${cdnUrl}/cdn/${files[0]!.name}`]));
    results.ours1!.push(await timed(process.execPath, ours(join(base, 'one.json'), 1, 1)));
    results.ours1c4!.push(await timed(process.execPath, ours(join(base, 'one.json'), 1, 4)));
    results.curlN!.push(await timed('curl', curlN()));
    results.oursN!.push(await timed(process.execPath, ours(join(base, 'all.json'), FILES, 1)));
    results.curlSum1!.push(await timed('bash', curlSum1()));
    results.curlSumN!.push(await timed('bash', curlSumN()));
    console.error(
      `run ${r + 1}: ` +
        Object.entries(results)
          .map(([k, v]) => `${k} ${v[r]!.wall.toFixed(2)}s (cpu ${v[r]!.cpu.toFixed(2)}s)`)
          .join(', ') +
        ` · load ${loadavg()[0]!.toFixed(1)}`,
    );
  }
  clean();
  child.kill();
  await child.catch(() => undefined);
  rmSync(base, { recursive: true, force: true });

  const rate = (bytes: number, sec: number) => bytes / MB / sec;
  const med = (xs: { wall: number; cpu: number }[], k: 'wall' | 'cpu') => median(xs.map((x) => x[k]));
  const row = (what: string, bytes: number, xs: { wall: number; cpu: number }[]) =>
    `| ${what} | ${(bytes / MB).toFixed(0)} MiB | ${xs.map((x) => x.wall.toFixed(2)).join(' / ')} | ${med(xs, 'wall').toFixed(2)} | ${rate(bytes, med(xs, 'wall')).toFixed(0)} | ${med(xs, 'cpu').toFixed(2)} | ${(bytes / MB / 1024 / med(xs, 'cpu')).toFixed(2)} |`;
  console.log(
    `${FILES} × ${MIB} MiB, ${RUNS} runs interleaved, ${cpus().length} CPUs, load average at the end ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}\n`,
  );
  console.log(`| run | bytes | wall seconds per run | median wall s | MiB/s | median CPU s (user+sys) | GiB per CPU-second |`);
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  console.log(row('curl, 1 file', size0, results.curl1!));
  console.log(row('steadydancer models download, 1 file, 1 connection (sha256 verified)', size0, results.ours1!));
  console.log(row('steadydancer models download, 1 file, --connections 4 (sha256 verified)', size0, results.ours1c4!));
  console.log(row(`curl -Z, ${FILES} files in parallel`, totalAll, results.curlN!));
  console.log(row(`steadydancer models download, ${FILES} files (--jobs ${FILES}, 1 connection each, sha256 verified)`, totalAll, results.oursN!));
  console.log(row('curl then sha256sum, 1 file', size0, results.curlSum1!));
  console.log(row(`curl -Z then sha256sum ×${FILES} in parallel`, totalAll, results.curlSumN!));
  const r1 = rate(size0, med(results.ours1!, 'wall')) / rate(size0, med(results.curl1!, 'wall'));
  const r4 = rate(size0, med(results.ours1c4!, 'wall')) / rate(size0, med(results.curl1!, 'wall'));
  const rN = rate(totalAll, med(results.oursN!, 'wall')) / rate(totalAll, med(results.curlN!, 'wall'));
  const v1 = med(results.curlSum1!, 'wall') / med(results.ours1!, 'wall');
  const vN = med(results.curlSumN!, 'wall') / med(results.oursN!, 'wall');
  console.log(`\nthroughput ratio (ours / curl): one file, 1 connection ${r1.toFixed(3)}; one file, 4 connections ${r4.toFixed(3)}; ${FILES} files (ours / curl -Z) ${rN.toFixed(3)}`);
  console.log(`throughput ratio (ours / curl + sha256sum, the same work): one file ${v1.toFixed(3)}; ${FILES} files ${vN.toFixed(3)}`);
}

if (process.argv.includes('--serve')) await serveChild();
else await main();
