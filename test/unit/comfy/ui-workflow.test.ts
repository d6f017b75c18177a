import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { apiToUi, uiGraph, type ObjectInfoNode, type UiWorkflow } from '../../../src/comfy/ui-workflow.js';
import { loadTemplate } from '../../../src/comfy/workflow.js';
import { dockerDir } from '../../../src/util/paths.js';

describe('docker/workflows: the UI file matches the API template', () => {
  const api = loadTemplate();
  const ui = JSON.parse(readFileSync(join(dockerDir(), 'workflows', 'steadydancer-dance.json'), 'utf8')) as UiWorkflow;

  it('same nodes (by title), same types, same links', () => {
    const g = uiGraph(ui);
    const titleOf = (id: string) => api[id]!._meta!.title!;
    expect([...g.keys()].sort()).toEqual(
      Object.values(api)
        .map((n) => n._meta!.title!)
        .sort(),
    );
    for (const n of Object.values(api)) {
      const u = g.get(n._meta!.title!)!;
      expect(u.type).toBe(n.class_type);
      const apiLinks = Object.fromEntries(
        Object.entries(n.inputs)
          .filter(([, v]) => Array.isArray(v))
          .map(([k, v]) => [k, [titleOf(String((v as unknown[])[0])), Number((v as unknown[])[1])]]),
      );
      expect(u.links, n._meta!.title).toEqual(apiLinks);
    }
  });

  it('widget values carry the template values (e.g. model files, seed control)', () => {
    const byTitle = new Map(ui.nodes.map((n) => [n.title, n]));
    // the loader's optional num_heads widget: 0 = from the checkpoint (its default in /object_info)
    expect(byTitle.get('SteadyDancer model')!.widgets_values).toEqual(['Wan21_SteadyDancer_fp8_e4m3fn_scaled_KJ.safetensors', 'default', 0]);
    expect(byTitle.get('Noise')!.widgets_values).toEqual([0, 'fixed']);
    expect(byTitle.get('VAE')!.widgets_values).toEqual(['wan_2.1_vae.safetensors']);
    // an INT named seed gets the frontend's control widget even without control_after_generate in
    // /object_info, so the values after it stay in place
    expect(byTitle.get('Pose prep')!.widgets_values).toEqual([480, 832, 81, true, 0, 'fixed', false]);
    expect(byTitle.get('Negative poses')!.widgets_values).toEqual([0, 'fixed', 0.7, 1.3, 0.6, 1.4]);
  });

  it('seed controls follow the frontend rule (control_after_generate, else an INT named seed / noise_seed)', () => {
    const api = { '1': { class_type: 'N', inputs: { seed: 5, noise_seed: 6, steps: 3, other: 7 } } };
    const info = {
      N: {
        input: { required: { seed: ['INT', {}], noise_seed: ['INT', { control_after_generate: false }], steps: ['INT', {}], other: ['INT', { control_after_generate: true }] } },
        output: [],
      },
    } as unknown as Record<string, ObjectInfoNode>;
    expect(apiToUi(api, info).nodes[0]!.widgets_values).toEqual([5, 'fixed', 6, 3, 7, 'fixed']);
  });

  it('links are consistent both ways (LiteGraph)', () => {
    for (const [id, from, fromSlot, to, toSlot] of ui.links) {
      const src = ui.nodes.find((n) => n.id === from)!;
      const dst = ui.nodes.find((n) => n.id === to)!;
      expect(src.outputs[fromSlot]!.links).toContain(id);
      expect(dst.inputs[toSlot]!.link).toBe(id);
    }
    expect(ui.last_link_id).toBe(ui.links.length);
  });
});
