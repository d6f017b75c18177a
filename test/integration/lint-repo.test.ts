/** The repository's own image definition passes `steadydancer lint` (every rule this host can run). */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runLint, renderLint } from '../../src/docker/lint.js';
import { rules } from '../../src/docker/rules/index.js';
import { manifestView } from '../../src/docker/manifest-bridge.js';
import { realRunner } from '../../src/system/exec.js';
import { projectRoot } from '../../src/util/paths.js';
import { needs } from '../helpers/skips.js';

const root = projectRoot();
const skip = needs('lint of the repository', existsSync(join(root, 'docker', 'Dockerfile')) ? undefined : 'docker/Dockerfile is not in this checkout yet (it comes with the image branch)');

describe.skipIf(skip)('steadydancer lint on the repository', () => {
  it('has no errors and no warnings', async () => {
    const r = await runLint(rules, { root, run: realRunner, manifest: manifestView });
    // On failure, the rendered report is the most useful message.
    expect(r.findings, renderLint(r)).toEqual([]);
    expect(r.ok).toBe(true);
  });
});
