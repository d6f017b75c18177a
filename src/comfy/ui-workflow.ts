/**
 * The UI-format workflow (docker/workflows/steadydancer-dance.json) is GENERATED from the API-format
 * template plus a real ComfyUI's /object_info (`npx tsx scripts/make-ui-workflow.ts`): the API file
 * is the one the toolkit fills, so it is the source; the UI file only adds layout and the widget
 * order, which /object_info defines. Generating it keeps the two from drifting (a test checks).
 */
import type { ApiWorkflow } from './workflow.js';

type InputSpec = [unknown, Record<string, unknown>?];
export interface ObjectInfoNode {
  input?: { required?: Record<string, InputSpec>; optional?: Record<string, InputSpec> };
  input_order?: { required?: string[]; optional?: string[] };
  output?: string[];
  output_name?: string[];
}

const WIDGET_TYPES = new Set(['INT', 'FLOAT', 'STRING', 'BOOLEAN', 'COMBO']);

function isWidget(spec: InputSpec): boolean {
  return Array.isArray(spec[0]) || WIDGET_TYPES.has(String(spec[0]));
}

/** Whether the frontend gives a widget its "control after generate" companion (one more value in
 * widgets_values): as its int widget decides, `control_after_generate` ?? an INT named seed or
 * noise_seed (the legacy convention). */
function hasSeedControl(name: string, spec: InputSpec): boolean {
  const explicit = spec[1]?.control_after_generate as boolean | undefined;
  return Boolean(explicit ?? (spec[0] === 'INT' && (name === 'seed' || name === 'noise_seed')));
}

export interface UiNode {
  id: number;
  type: string;
  title: string;
  pos: [number, number];
  size: [number, number];
  flags: Record<string, never>;
  order: number;
  mode: 0;
  inputs: { name: string; type: string; link: number | null; widget?: { name: string } }[];
  outputs: { name: string; type: string; links: number[]; slot_index: number }[];
  properties: { 'Node name for S&R': string };
  widgets_values: unknown[];
}

export interface UiWorkflow {
  last_node_id: number;
  last_link_id: number;
  nodes: UiNode[];
  links: [number, number, number, number, number, string][];
  groups: never[];
  config: Record<string, never>;
  extra: Record<string, unknown>;
  version: 0.4;
}

export function apiToUi(api: ApiWorkflow, info: Record<string, ObjectInfoNode>): UiWorkflow {
  const ids = Object.keys(api).sort((a, b) => Number(a) - Number(b));
  const links: UiWorkflow['links'] = [];
  const nodes: UiNode[] = [];
  const outLinks = new Map<string, number[]>();
  // depth for a simple left-to-right layout
  const depth = new Map<string, number>();
  const depthOf = (id: string): number => {
    if (depth.has(id)) return depth.get(id)!;
    depth.set(id, 0);
    let d = 0;
    for (const v of Object.values(api[id]!.inputs)) if (Array.isArray(v)) d = Math.max(d, depthOf(String(v[0])) + 1);
    depth.set(id, d);
    return d;
  };
  ids.forEach(depthOf);
  const rows = new Map<number, number>();
  for (const id of ids) {
    const n = api[id]!;
    const spec = info[n.class_type];
    if (!spec) throw new Error(`/object_info has no node type ${n.class_type} (node ${id}): is the node pack loaded?`);
    const order = [...(spec.input_order?.required ?? Object.keys(spec.input?.required ?? {})), ...(spec.input_order?.optional ?? Object.keys(spec.input?.optional ?? {}))];
    const all = { ...(spec.input?.required ?? {}), ...(spec.input?.optional ?? {}) };
    const inputs: UiNode['inputs'] = [];
    const widgets: unknown[] = [];
    for (const name of order) {
      const s = all[name]!;
      const v = n.inputs[name];
      if (Array.isArray(v)) {
        const linkId = links.length + 1;
        const [src, slot] = [String(v[0]), Number(v[1])];
        const type = info[api[src]!.class_type]!.output?.[slot] ?? '*';
        links.push([linkId, Number(src), slot, Number(id), inputs.length, type]);
        outLinks.set(`${src}:${slot}`, [...(outLinks.get(`${src}:${slot}`) ?? []), linkId]);
        inputs.push({ name, type: isWidget(s) ? (Array.isArray(s[0]) ? 'COMBO' : String(s[0])) : String(s[0]), link: linkId, ...(isWidget(s) ? { widget: { name } } : {}) });
        if (isWidget(s)) widgets.push(null);
      } else if (isWidget(s)) {
        widgets.push(v ?? s[1]?.default ?? null);
        if (hasSeedControl(name, s)) widgets.push('fixed');
        if (s[1]?.image_upload || s[1]?.video_upload || s[1]?.animated_image_upload) widgets.push('image');
      } else if (v === undefined && all[name] && !(spec.input?.optional && name in spec.input.optional)) {
        throw new Error(`node ${id} (${n.class_type}) leaves required input ${name} unconnected`);
      } else if (!isWidget(s)) {
        inputs.push({ name, type: String(s[0]), link: null });
      }
    }
    const d = depth.get(id)!;
    const row = rows.get(d) ?? 0;
    rows.set(d, row + 1);
    nodes.push({
      id: Number(id),
      type: n.class_type,
      title: n._meta?.title ?? n.class_type,
      pos: [40 + d * 380, 40 + row * 260],
      size: [340, 200],
      flags: {},
      order: 0,
      mode: 0,
      inputs,
      outputs: (spec.output ?? []).map((type, i) => ({ name: spec.output_name?.[i] ?? type, type, links: [], slot_index: i })),
      properties: { 'Node name for S&R': n.class_type },
      widgets_values: widgets,
    });
  }
  for (const node of nodes) for (const o of node.outputs) o.links = outLinks.get(`${node.id}:${o.slot_index}`) ?? [];
  // execution order: by depth, then id
  [...nodes].sort((a, b) => depth.get(String(a.id))! - depth.get(String(b.id))! || a.id - b.id).forEach((n, i) => (n.order = i));
  return {
    last_node_id: Math.max(...nodes.map((n) => n.id)),
    last_link_id: links.length,
    nodes,
    links,
    groups: [],
    config: {},
    extra: { generated_from: 'steadydancer-dance.api.json (scripts/make-ui-workflow.ts)' },
    version: 0.4,
  };
}

/** The API-level graph of a UI workflow (node type, title and links), for the consistency test. */
export function uiGraph(ui: UiWorkflow): Map<string, { type: string; links: Record<string, [string, number]> }> {
  const byId = new Map(ui.nodes.map((n) => [n.id, n]));
  const g = new Map<string, { type: string; links: Record<string, [string, number]> }>();
  for (const n of ui.nodes) {
    const links: Record<string, [string, number]> = {};
    for (const inp of n.inputs) {
      if (inp.link === null) continue;
      const l = ui.links.find((x) => x[0] === inp.link);
      if (!l) throw new Error(`UI workflow: node ${n.id} input ${inp.name} refers to missing link ${inp.link}`);
      links[inp.name] = [byId.get(l[1])!.title, l[2]];
    }
    g.set(n.title, { type: n.type, links });
  }
  return g;
}
