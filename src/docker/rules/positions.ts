/**
 * Line numbers for paths inside JSON and YAML files. The `yaml` library parses both (JSON is
 * YAML) and keeps every node's source range, so a schema error at `services.comfyui.ports`
 * can name its line.
 */
import { parseDocument, isMap, isNode, isScalar, isSeq, type Document } from 'yaml';
import { lineOf } from '../lint.js';

export interface Located {
  doc: Document;
  text: string;
}

export function locate(text: string): Located {
  return { doc: parseDocument(text, { keepSourceTokens: false, uniqueKeys: false }), text };
}

/**
 * Line of the entry at `path`: the line of its key in a mapping (where a reader looks), the
 * line of the item in a sequence; for a path that does not exist, its nearest existing parent.
 */
export function lineAt(loc: Located, path: Array<string | number>): number {
  for (let n = path.length; n > 0; n--) {
    const parent = n === 1 ? loc.doc.contents : loc.doc.getIn(path.slice(0, n - 1), true);
    const seg = path[n - 1]!;
    if (isMap(parent)) {
      const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (pair && isNode(pair.key) && pair.key.range) return lineOf(loc.text, pair.key.range[0]);
    } else if (isSeq(parent) && typeof seg === 'number') {
      const item = parent.items[seg];
      if (isNode(item) && item.range) return lineOf(loc.text, item.range[0]);
    }
  }
  const root = loc.doc.contents;
  return isNode(root) && root.range ? lineOf(loc.text, root.range[0]) : 1;
}

/** A JSON pointer (ajv's instancePath "/services/a/ports/0") as a path. */
export function pointerPath(pointer: string): Array<string | number> {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

/** Line of a JSON.parse error ("... at position 123" / "(line 4 column 2)"), else 1. */
export function jsonErrorLine(text: string, err: Error): number {
  const lc = /line (\d+) column \d+/.exec(err.message);
  if (lc) return Number(lc[1]);
  const pos = /position (\d+)/.exec(err.message);
  return pos ? lineOf(text, Number(pos[1])) : 1;
}
