/** SC001: no credentials written into any file of the image definition (docker/). */
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Rule } from '../lint.js';

const PATTERNS: Array<[name: string, re: RegExp]> = [
  ['a Hugging Face token', /\bhf_[A-Za-z0-9]{30,}\b/],
  ['a RunPod API key', /\brpa_[A-Za-z0-9]{30,}\b/],
  ['an AWS access key id', /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/],
  ['a private key', /-----BEGIN (?:RSA |EC |DSA |OPENSSH )?PRIVATE KEY-----/],
];

const MAX_BYTES = 4 * 1024 * 1024;

function walk(dir: string, out: string[]): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names.sort()) {
    const p = join(dir, n);
    const st = statSync(p);
    if (st.isDirectory()) {
      if (n !== 'node_modules' && n !== '.git') walk(p, out);
    } else if (st.isFile() && st.size <= MAX_BYTES) out.push(p);
  }
}

export const SC001: Rule = {
  id: 'SC001',
  title: 'no tokens or keys in any file under docker/ (Hugging Face, RunPod, AWS, private keys)',
  severity: 'error',
  async check(ctx) {
    const files: string[] = [];
    walk(join(ctx.root, 'docker'), files);
    const out = [];
    for (const abs of files) {
      const rel = relative(ctx.root, abs).split('\\').join('/');
      const text = ctx.read(rel);
      if (text === null || text.includes('\u0000')) continue;
      const lines = text.split('\n');
      for (let i = 0; i < lines.length; i++) {
        for (const [what, re] of PATTERNS) {
          const m = re.exec(lines[i]!);
          if (!m) continue;
          // Never print the secret itself: its first characters identify it well enough.
          out.push({
            file: rel,
            line: i + 1,
            column: m.index + 1,
            message: `${what} is written in this file (${m[0].slice(0, 6)}…)`,
            hint: 'remove it, revoke it, and pass it at run time (environment) or build time (BuildKit secret) instead',
          });
        }
      }
    }
    return out;
  },
};
