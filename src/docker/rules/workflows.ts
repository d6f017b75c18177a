/**
 * WF001: every docker/workflows/*.json is a ComfyUI workflow in UI format (nodes + links) or
 * API format (id → {class_type, inputs}) whose links point at nodes that exist.
 * WF002: every model file such a workflow loads is in the model manifest.
 */
import { z } from 'zod';
import type { Rule } from '../lint.js';
import { jsonErrorLine, lineAt, locate, type Located } from './positions.js';

export const WORKFLOW_DIR = 'docker/workflows';

const NodeId = z.union([z.number().int(), z.string().min(1)]);

const UiNode = z.looseObject({
  id: NodeId,
  type: z.string().min(1),
  widgets_values: z.union([z.array(z.unknown()), z.record(z.string(), z.unknown())]).optional(),
});
const UiLinkArray = z.tuple([z.number(), NodeId, z.number(), NodeId, z.number()]).rest(z.unknown());
const UiLinkObject = z.looseObject({ id: z.number(), origin_id: NodeId, origin_slot: z.number(), target_id: NodeId, target_slot: z.number() });
export const UiWorkflow = z.looseObject({ nodes: z.array(UiNode), links: z.array(z.union([UiLinkArray, UiLinkObject])) });

const ApiNode = z.looseObject({ class_type: z.string().min(1), inputs: z.record(z.string(), z.unknown()) });
export const ApiWorkflow = z.record(z.string(), ApiNode).refine((o) => Object.keys(o).length > 0, 'an API workflow needs at least one node');

export type WorkflowFormat = 'ui' | 'api';

/** Extensions of the model files ComfyUI loaders take. */
export const MODEL_EXT = /\.(safetensors|sft|gguf|ckpt|pt|pth|bin|onnx|torchscript)$/i;

interface Parsed {
  format: WorkflowFormat;
  data: unknown;
  loc: Located;
}

type Problem = { line: number; message: string };

function parseWorkflow(text: string): { ok: Parsed } | { problems: Problem[] } {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return { problems: [{ line: jsonErrorLine(text, err as Error), message: `not valid JSON: ${(err as Error).message}` }] };
  }
  const loc = locate(text);
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return { problems: [{ line: 1, message: 'a workflow is a JSON object' }] };
  const isUi = 'nodes' in data || 'links' in data;
  const schema = isUi ? UiWorkflow : ApiWorkflow;
  const res = schema.safeParse(data);
  if (!res.success) {
    return {
      problems: res.error.issues.slice(0, 20).map((i) => {
        const path = i.path.filter((p): p is string | number => typeof p !== 'symbol');
        return { line: lineAt(loc, path), message: `${isUi ? 'UI' : 'API'} format: ${path.join('.') || '(root)'}: ${i.message}` };
      }),
    };
  }
  return { ok: { format: isUi ? 'ui' : 'api', data, loc } };
}

function integrity(p: Parsed): Problem[] {
  const out: Problem[] = [];
  if (p.format === 'ui') {
    const wf = p.data as z.infer<typeof UiWorkflow>;
    const ids = new Set<string>();
    wf.nodes.forEach((n, i) => {
      const k = String(n.id);
      if (ids.has(k)) out.push({ line: lineAt(p.loc, ['nodes', i, 'id']), message: `duplicate node id ${k}` });
      ids.add(k);
    });
    wf.links.forEach((l, i) => {
      const [from, to] = Array.isArray(l) ? [l[1], l[3]] : [l.origin_id, l.target_id];
      for (const end of [from, to]) {
        if (!ids.has(String(end))) out.push({ line: lineAt(p.loc, ['links', i]), message: `link ${Array.isArray(l) ? l[0] : l.id} refers to node ${end}, which does not exist` });
      }
    });
  } else {
    const wf = p.data as Record<string, { class_type: string; inputs: Record<string, unknown> }>;
    for (const [id, node] of Object.entries(wf)) {
      for (const [name, v] of Object.entries(node.inputs)) {
        if (Array.isArray(v) && v.length === 2 && (typeof v[0] === 'string' || typeof v[0] === 'number') && Number.isInteger(v[1])) {
          if (!(String(v[0]) in wf)) out.push({ line: lineAt(p.loc, [id, 'inputs', name]), message: `node ${id} (${node.class_type}) input "${name}" links to node ${v[0]}, which does not exist` });
        }
      }
    }
  }
  return out;
}

/** Model file names a workflow loads, with the JSON path where each is named. */
export function modelReferences(p: Parsed): Array<{ name: string; path: Array<string | number> }> {
  const refs: Array<{ name: string; path: Array<string | number> }> = [];
  const take = (v: unknown, path: Array<string | number>) => {
    if (typeof v === 'string' && MODEL_EXT.test(v.trim())) refs.push({ name: v.trim(), path });
  };
  if (p.format === 'ui') {
    const wf = p.data as z.infer<typeof UiWorkflow>;
    wf.nodes.forEach((n, i) => {
      const wv = n.widgets_values;
      if (Array.isArray(wv)) wv.forEach((v, k) => take(v, ['nodes', i, 'widgets_values', k]));
      else if (wv) for (const [k, v] of Object.entries(wv)) take(v, ['nodes', i, 'widgets_values', k]);
    });
  } else {
    for (const [id, node] of Object.entries(p.data as Record<string, { inputs: Record<string, unknown> }>)) {
      for (const [k, v] of Object.entries(node.inputs)) take(v, [id, 'inputs', k]);
    }
  }
  return refs;
}

export const WF001: Rule = {
  id: 'WF001',
  title: 'workflows (docker/workflows/*.json) are valid ComfyUI UI or API JSON',
  severity: 'error',
  async check(ctx) {
    const out = [];
    for (const file of ctx.list(WORKFLOW_DIR, '.json')) {
      const res = parseWorkflow(ctx.read(file)!);
      const problems = 'ok' in res ? integrity(res.ok) : res.problems;
      for (const p of problems) out.push({ file, line: p.line, message: p.message, hint: 'export the workflow again from ComfyUI (Save for the UI format, Export (API) for the API format)' });
    }
    return out;
  },
};

export const WF002: Rule = {
  id: 'WF002',
  title: 'every model file a workflow loads is in the model manifest',
  severity: 'error',
  async check(ctx) {
    const files = ctx.list(WORKFLOW_DIR, '.json');
    if (!files.length) return [];
    let manifest;
    try {
      manifest = await ctx.manifest();
    } catch {
      return { skipped: 'the model manifest is not valid (reported by MD001)' };
    }
    if (!manifest) return { skipped: 'no model manifest (docker/models.json) to check against' };
    const out = [];
    for (const file of files) {
      const res = parseWorkflow(ctx.read(file)!);
      if (!('ok' in res)) continue; // WF001 reports it
      for (const ref of modelReferences(res.ok)) {
        const norm = ref.name.replace(/\\/g, '/');
        if (manifest.files.has(norm)) continue;
        out.push({
          file,
          line: lineAt(res.ok.loc, ref.path),
          message: `loads model file "${ref.name}", which ${manifest.source} does not list`,
          hint: `add the file to ${manifest.source} (with its repo, size and sha256) or use a file the manifest has`,
        });
      }
    }
    return out;
  },
};
