/** The UI-format workflow in a real browser (playwright-core + Debian's Chromium) on a real ComfyUI. */
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NativeComfy } from '../../../src/comfy/native.js';
import { browserCheck } from '../../../src/comfy/smoke.js';
import { dockerDir } from '../../../src/util/paths.js';
import { comfySkipReason, startTestComfy } from '../../helpers/comfy.js';
import { needs } from '../../helpers/skips.js';

const skip = needs('UI workflow in a browser', comfySkipReason() ?? (existsSync('/usr/bin/chromium') ? undefined : 'no /usr/bin/chromium (scripts/ensure-chromium.sh installs it)'));

describe.skipIf(skip)('UI workflow loads in Chromium', () => {
  let comfy: NativeComfy;
  const out = mkdtempSync(join(tmpdir(), 'sd-browser-'));
  const ui = JSON.parse(readFileSync(join(dockerDir(), 'workflows', 'steadydancer-dance.json'), 'utf8'));
  beforeAll(async () => {
    comfy = await startTestComfy();
  }, 600_000);
  afterAll(async () => comfy?.stop());

  it('no missing node types; a screenshot is saved', async () => {
    const shot = await browserCheck(comfy.url, ui, join(out, 'ui.png'));
    expect(statSync(shot).size).toBeGreaterThan(10_000);
  }, 300_000);

  it('a workflow with an unknown node type is reported', async () => {
    const bad = structuredClone(ui);
    bad.nodes[0].type = 'SteadyDancerNoSuchNode';
    await expect(browserCheck(comfy.url, bad, join(out, 'bad.png'))).rejects.toThrow(/SteadyDancerNoSuchNode/);
  }, 300_000);
});
