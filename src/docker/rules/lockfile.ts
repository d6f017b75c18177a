/** LK001: docker/custom-nodes.lock.json parses and pins every source to a full 40-hex commit. */
import { LockSchema } from '../lock.js';
import { LOCK, type Rule } from '../lint.js';
import { jsonErrorLine, lineAt, locate } from './positions.js';

export const LK001: Rule = {
  id: 'LK001',
  title: 'node lock (docker/custom-nodes.lock.json) is valid and every source is pinned to a full commit',
  severity: 'error',
  async check(ctx) {
    const text = ctx.read(LOCK);
    if (text === null) return [{ file: LOCK, line: 1, message: `${LOCK} is missing`, hint: 'the image installs node packs from this lock: restore it' }];
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      return [{ file: LOCK, line: jsonErrorLine(text, err as Error), message: `not valid JSON: ${(err as Error).message}`, hint: 'fix the JSON syntax' }];
    }
    const res = LockSchema.safeParse(raw);
    if (res.success) return [];
    const loc = locate(text);
    return res.error.issues.map((i) => {
      const path = i.path.filter((p): p is string | number => typeof p !== 'symbol');
      const isCommit = path[path.length - 1] === 'commit';
      return {
        file: LOCK,
        line: lineAt(loc, path),
        message: `${path.join('.') || '(root)'}: ${i.message}`,
        hint: isCommit ? 'replace it with the full 40-hex commit (git rev-parse <ref> in a clone of the repo)' : 'every source needs name, repo and a full 40-hex commit',
      };
    });
  },
};
