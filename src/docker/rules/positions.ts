/**
 * Line numbers for paths inside JSON and YAML files. The `yaml` library parses both (JSON is
 * YAML) and keeps every node's source range, so a schema error at `services.comfyui.ports`
 * can name its line.
 */
import { parseDocument, isNode, type Document } from 'yaml';
import { lineOf } from '../lint.js';

export interface Located {
  doc: Document;
  text: string;
}

export function locate(text: string): Located {
  return { doc: parseDocument(text, { keepSourceTokens: false, uniqueKeys: false }), text };
}

/** Line of the node at `path`, or of its nearest existing parent; 1 when nothing matches. */
export function lineAt(loc: Located, path: Array<string | number>): number {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? loc.doc.contents : loc.doc.getIn(path.slice(0, n), true);
    if (isNode(node) && node.range) return lineOf(loc.text, node.range[0]);
  }
  return 1;
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
