/**
 * docker/custom-nodes.lock.json: the pinned ComfyUI commit, the node packs that go into the
 * image and the reference sources used only by tests. One source of truth, read by the toolkit
 * (sources, build, lint) and by the Dockerfile (through the prepared build context).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ActionableError } from '../util/errors.js';
import { dockerDir } from '../util/paths.js';

export const LOCK_FILE = 'custom-nodes.lock.json';

/** A full 40-hex git commit (a branch, tag or short hash is not a pin). */
export const CommitSchema = z.string().regex(/^[0-9a-f]{40}$/, 'must be a full 40-hex git commit (lower case), not a branch, tag or short hash');

/** Directory-safe name: it becomes ComfyUI/custom_nodes/<name> and the cache key <name>@<commit>. */
export const SourceNameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a plain directory name (letters, digits, . _ -)');

export const SourceSchema = z.object({
  name: SourceNameSchema,
  repo: z.string().regex(/^(https:\/\/|git@|file:\/\/|\/)/, 'must be an https://, git@, file:// URL or an absolute path'),
  commit: CommitSchema,
});

export const NodePackSchema = SourceSchema.extend({
  /** Install the pack's requirements.txt (through the image's constraints). Default true. */
  requirements: z.boolean().default(true),
});

export const ReferenceSchema = SourceSchema.extend({
  purpose: z.string().min(1),
});

export const LockSchema = z
  .object({
    version: z.literal(1),
    comfyui: SourceSchema,
    nodes: z.array(NodePackSchema).min(1),
    references: z.array(ReferenceSchema).default([]),
  })
  .superRefine((lock, ctx) => {
    const seen = new Set<string>();
    for (const [i, n] of lock.nodes.entries()) {
      if (seen.has(n.name)) ctx.addIssue({ code: 'custom', path: ['nodes', i, 'name'], message: `duplicate node pack name "${n.name}"` });
      seen.add(n.name);
    }
  });

export type Source = z.infer<typeof SourceSchema>;
export type NodePack = z.infer<typeof NodePackSchema>;
export type Reference = z.infer<typeof ReferenceSchema>;
export type Lock = z.infer<typeof LockSchema>;

export function lockPath(root?: string): string {
  return join(root ? join(root, 'docker') : dockerDir(), LOCK_FILE);
}

/** Parse lock JSON text; errors name the file and the JSON path of each problem. */
export function parseLock(text: string, file = LOCK_FILE): Lock {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ActionableError(`${file}: not valid JSON (${(err as Error).message})`, {
      code: 'E_LOCK_JSON',
      hint: 'fix the JSON syntax of the lock file',
    });
  }
  const res = LockSchema.safeParse(raw);
  if (!res.success) {
    const problems = res.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ActionableError(`${file}: ${problems.join('; ')}`, {
      code: 'E_LOCK_SCHEMA',
      hint: 'every source needs name, repo and a full 40-hex commit (see docker/custom-nodes.lock.json)',
    });
  }
  return res.data;
}

/** Load docker/custom-nodes.lock.json (or the given path). */
export function loadLock(file: string = lockPath()): Lock {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ActionableError(`cannot read the node lock ${file}: ${(err as Error).message}`, {
      code: 'E_LOCK_MISSING',
      hint: 'run from the repository root, or pass the path of custom-nodes.lock.json',
    });
  }
  return parseLock(text, file);
}

/** Every source the lock names: ComfyUI, the node packs, then the references. */
export function allSources(lock: Lock): Array<Source & { kind: 'comfyui' | 'node' | 'reference' }> {
  return [
    { ...lock.comfyui, kind: 'comfyui' as const },
    ...lock.nodes.map((n) => ({ name: n.name, repo: n.repo, commit: n.commit, kind: 'node' as const })),
    ...lock.references.map((r) => ({ name: r.name, repo: r.repo, commit: r.commit, kind: 'reference' as const })),
  ];
}

/**
 * Resolve a pack selection ("all", or a comma list of names) against the lock. Unknown names are
 * an error naming the valid ones. Returns the selected packs (lock order) and the omitted ones.
 */
export function selectPacks(lock: Lock, selection: string | undefined): { selected: NodePack[]; omitted: NodePack[] } {
  const sel = (selection ?? 'all').trim();
  if (sel === '' || sel === 'all') return { selected: [...lock.nodes], omitted: [] };
  if (sel === 'none') return { selected: [], omitted: [...lock.nodes] };
  const names = sel
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const known = new Set(lock.nodes.map((n) => n.name));
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length) {
    throw new ActionableError(`unknown node pack(s): ${unknown.join(', ')}`, {
      code: 'E_USAGE',
      exitCode: 2,
      hint: `choose from: all, none, ${lock.nodes.map((n) => n.name).join(', ')}`,
    });
  }
  const want = new Set(names);
  return {
    selected: lock.nodes.filter((n) => want.has(n.name)),
    omitted: lock.nodes.filter((n) => !want.has(n.name)),
  };
}
