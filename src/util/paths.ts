import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root: the folder holding package.json and docker/ (works from src/ and dist/). */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'docker'))) return dir;
    dir = dirname(dir);
  }
  return resolve(process.cwd());
}

/** The toolkit's version (package.json): `steadydancer --version` and `steadydancer version`. */
export function toolkitVersion(): string {
  return (JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

export function dockerDir(root = projectRoot()): string {
  return join(root, 'docker');
}

/** $XDG_CACHE_HOME/steadydancer (default ~/.cache/steadydancer). */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'steadydancer');
}

/** The content-addressed source cache: <cache>/sources/<name>@<commit>. */
export function sourcesDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheDir(env), 'sources');
}
