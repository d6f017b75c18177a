/** Where tests find the pinned upstream sources (the project's source cache). */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { sourcesDir } from '../../src/util/paths.js';

export const COMFYUI_COMMIT = 'a125cd84b054a57729b5eecab930ca9408719832';
export const OFFICIAL_COMMIT = '866a7219e74923d9486ab611cd981b15e5d959e5';

export function cachedSource(name: string, commit: string): string | undefined {
  const p = join(sourcesDir(), `${name}@${commit}`);
  return existsSync(p) ? p : undefined;
}

export function seedHint(name: string, commit: string): string {
  return `${name}@${commit.slice(0, 12)} is not in the source cache (${sourcesDir()}); seed it with \`steadydancer sources fetch\` (or --from <git mirror>)`;
}

/** The Python interpreter of the test venv (make test sets STEADYDANCER_PYTHON). */
export function testPython(): string | undefined {
  const p = process.env.STEADYDANCER_PYTHON ?? join(process.cwd(), '.venv', 'bin', 'python');
  return existsSync(p) ? p : undefined;
}
