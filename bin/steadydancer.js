#!/usr/bin/env node
// Entry point: runs the compiled CLI when present (the image, npm installs), else the
// TypeScript sources through tsx (a development checkout). The only process.exit is here
// and in src/cli.ts's own main guard.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

// libuv's thread pool (every fs call) has 4 threads unless told so before its first use:
// `models prefetch` keeps 8 reads in flight.
process.env.UV_THREADPOOL_SIZE ??= '16';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const compiled = join(root, 'dist', 'cli.js');
let mod;
if (existsSync(compiled)) {
  mod = await import(pathToFileURL(compiled).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  mod = await import(pathToFileURL(join(root, 'src', 'cli.ts')).href);
}
const ac = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => ac.abort(new Error(`received ${sig}`)));
process.exit(await mod.runCli(process.argv.slice(2), { signal: ac.signal }));
