/** MD001: docker/models.json (the model manifest) is valid JSON that matches its schema. */
import { manifestSchema } from '../../models/manifest.js';
import { MANIFEST } from '../manifest-bridge.js';
import type { Rule } from '../lint.js';
import { jsonErrorLine, lineAt, locate } from './positions.js';

export const MD001: Rule = {
  id: 'MD001',
  title: 'model manifest (docker/models.json) is valid against its schema',
  severity: 'error',
  async check(ctx) {
    const text = ctx.read(MANIFEST);
    if (text === null) return { skipped: `${MANIFEST} is not in this tree` };
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      return [{ file: MANIFEST, line: jsonErrorLine(text, err as Error), message: `not valid JSON: ${(err as Error).message}`, hint: 'fix the JSON syntax' }];
    }
    const res = manifestSchema.safeParse(raw);
    if (res.success) return [];
    const loc = locate(text);
    return res.error.issues.slice(0, 50).map((i) => {
      const path = i.path.filter((p): p is string | number => typeof p !== 'symbol');
      return {
        file: MANIFEST,
        line: lineAt(loc, path),
        message: `${path.join('.') || '(root)'}: ${i.message}`,
        hint: 'the schema is in src/models/manifest.ts; unknown facts (size, sha256, commit) are null, never guessed',
      };
    });
  },
};
