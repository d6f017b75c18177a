/**
 * Regenerate docker/workflows/steadydancer-dance.json (UI format) from the API template and a
 * running ComfyUI's /object_info (with our node pack loaded):
 *   npx tsx scripts/make-ui-workflow.ts http://127.0.0.1:8188     (or a saved object_info.json)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ComfyClient } from '../src/comfy/client.js';
import { apiToUi, type ObjectInfoNode } from '../src/comfy/ui-workflow.js';
import { loadTemplate, templatePath } from '../src/comfy/workflow.js';
import { dockerDir } from '../src/util/paths.js';

const src = process.argv[2];
if (!src) throw new Error('usage: make-ui-workflow.ts <ComfyUI URL | object_info.json>');
const info = (src.startsWith('http') ? await new ComfyClient({ url: src }).objectInfo() : JSON.parse(readFileSync(src, 'utf8'))) as Record<string, ObjectInfoNode>;
const ui = apiToUi(loadTemplate(templatePath()), info);
const out = join(dockerDir(), 'workflows', 'steadydancer-dance.json');
writeFileSync(out, JSON.stringify(ui, null, 2) + '\n');
process.stdout.write(`wrote ${out} (${ui.nodes.length} nodes, ${ui.links.length} links)\n`);
