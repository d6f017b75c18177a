/**
 * docker/models.json: the one list of model files. The toolkit (models check / download,
 * doctor, lint), docker/download_models.sh (Dockerfile bake, start.sh) all read it through
 * this module. Unknown facts (sizes, sha256, commits) are null — never guessed.
 */
import { readFileSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { z } from 'zod';
import { ActionableError, UsageError } from '../util/errors.js';
import { projectRoot } from '../util/paths.js';

const HEX40 = /^[0-9a-f]{40}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const ID = /^[a-z0-9][a-z0-9._-]*$/;
/** Folders under models/ that ComfyUI (and docker/extra_model_paths.yaml) knows. */
export const MODEL_FOLDERS = ['diffusion_models', 'text_encoders', 'clip_vision', 'vae', 'loras', 'detection', 'checkpoints'] as const;
export const FILE_ROLES = ['diffusion_model', 'text_encoder', 'vae', 'clip_vision', 'lora', 'pose_detector', 'pose_estimator'] as const;
const VERIFIABLE = ['repo', 'path', 'revision', 'commit', 'size', 'sha256'] as const;

/** A relative path with no `..`, no leading slash, no backslash. */
const relPath = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith('/') && !p.includes('\\') && !p.split('/').some((s) => s === '..' || s === '.' || s === ''), {
    message: 'must be a relative path without "..", "." or empty segments (forward slashes only)',
  });

const fileSchema = z
  .object({
    role: z.enum(FILE_ROLES),
    description: z.string().min(1),
    repo: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be "owner/name"'),
    revision: z.string().min(1),
    commit: z.string().regex(HEX40, 'must be a full 40-hex commit').nullable(),
    path: relPath,
    folder: z.enum(MODEL_FOLDERS),
    filename: z
      .string()
      .min(1)
      .refine((f) => !f.includes('/') && !f.includes('\\') && f !== '.' && f !== '..', { message: 'must be a bare file name' }),
    size: z.number().int().positive().nullable(),
    sha256: z.string().regex(HEX64, 'must be 64 lowercase hex digits').nullable(),
    verified: z.array(z.enum(VERIFIABLE)),
    sources: z.array(z.string().min(1)).min(1),
  })
  .strict();

const workflowSchema = z
  .object({
    description: z.string().min(1),
    workflowFiles: z.array(relPath),
    requires: z.array(z.string()),
    textEncoderByVariant: z.record(z.string(), z.string()),
    optional: z.array(z.string()),
  })
  .strict();

const variantSchema = z
  .object({
    description: z.string().min(1),
    diffusionModel: z.string(),
    workflow: z.string(),
    fallback: z.string().nullable(),
  })
  .strict();

const presetSchema = z
  .object({
    description: z.string().min(1),
    files: z.array(z.string()),
    cfg: z.number().positive(),
    steps: z.number().int().positive(),
  })
  .strict();

const idRecord = <T extends z.ZodType>(value: T) => z.record(z.string().regex(ID, 'ids are lowercase letters, digits, ".", "_" and "-"'), value);

export const manifestSchema = z
  .object({
    $schema: z.string().optional(),
    schemaVersion: z.literal(1),
    description: z.string(),
    hub: z.object({ endpoint: z.url() }).strict(),
    defaultVariant: z.string(),
    fallbackOrder: z.array(z.string()).min(1),
    files: idRecord(fileSchema),
    workflows: idRecord(workflowSchema),
    variants: idRecord(variantSchema),
    presets: idRecord(presetSchema),
  })
  .strict()
  .superRefine((m, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const fileIds = new Set(Object.keys(m.files));
    const needFile = (path: (string | number)[], id: string) => {
      if (!fileIds.has(id)) issue(path, `names file "${id}", which is not in "files"`);
    };
    for (const [id, f] of Object.entries(m.files)) {
      if (posix.basename(f.path) !== f.filename) {
        // Renaming on download is allowed, but only deliberately: say so in the description.
        if (!/renamed/i.test(f.description)) issue(['files', id, 'filename'], `differs from the basename of "path" (${posix.basename(f.path)}); say "renamed" in the description if that is meant`);
      }
      for (const v of f.verified) {
        if ((v === 'size' || v === 'sha256' || v === 'commit') && f[v] === null) issue(['files', id, 'verified'], `lists "${v}" as verified but ${v} is null`);
      }
    }
    // Two files may not land on the same place.
    const seen = new Map<string, string>();
    for (const [id, f] of Object.entries(m.files)) {
      const key = `${f.folder}/${f.filename}`;
      const other = seen.get(key);
      if (other) issue(['files', id, 'filename'], `"${key}" is also the target of file "${other}"`);
      seen.set(key, id);
    }
    for (const [wid, w] of Object.entries(m.workflows)) {
      w.requires.forEach((f, i) => needFile(['workflows', wid, 'requires', i], f));
      w.optional.forEach((f, i) => needFile(['workflows', wid, 'optional', i], f));
      for (const [v, f] of Object.entries(w.textEncoderByVariant)) {
        needFile(['workflows', wid, 'textEncoderByVariant', v], f);
        if (!(v in m.variants)) issue(['workflows', wid, 'textEncoderByVariant', v], `"${v}" is not a variant`);
      }
    }
    for (const [vid, v] of Object.entries(m.variants)) {
      needFile(['variants', vid, 'diffusionModel'], v.diffusionModel);
      const f = m.files[v.diffusionModel];
      if (f && f.role !== 'diffusion_model') issue(['variants', vid, 'diffusionModel'], `file "${v.diffusionModel}" has role ${f.role}, not diffusion_model`);
      if (!(v.workflow in m.workflows)) issue(['variants', vid, 'workflow'], `"${v.workflow}" is not in "workflows"`);
      if (v.fallback !== null && !(v.fallback in m.variants)) issue(['variants', vid, 'fallback'], `"${v.fallback}" is not a variant`);
    }
    // Fallback chains must end.
    for (const vid of Object.keys(m.variants)) {
      const chain = [vid];
      let cur = m.variants[vid]?.fallback ?? null;
      while (cur !== null && m.variants[cur]) {
        if (chain.includes(cur)) {
          issue(['variants', vid, 'fallback'], `fallback loop: ${[...chain, cur].join(' → ')}`);
          break;
        }
        chain.push(cur);
        cur = m.variants[cur]?.fallback ?? null;
      }
    }
    if (!(m.defaultVariant in m.variants)) issue(['defaultVariant'], `"${m.defaultVariant}" is not a variant`);
    m.fallbackOrder.forEach((v, i) => {
      if (!(v in m.variants)) issue(['fallbackOrder', i], `"${v}" is not a variant`);
    });
    for (const [pid, p] of Object.entries(m.presets)) p.files.forEach((f, i) => needFile(['presets', pid, 'files', i], f));
  });

export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestFileSpec = z.infer<typeof fileSchema>;
export type ModelFolder = (typeof MODEL_FOLDERS)[number];
/** A file entry together with its id (the key in "files"). */
export type ManifestFile = ManifestFileSpec & { id: string };

/** The default manifest: $STEADYDANCER_MODELS_MANIFEST, else docker/models.json of this checkout. */
export function defaultManifestPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.STEADYDANCER_MODELS_MANIFEST || join(projectRoot(), 'docker', 'models.json');
}

/** `files["a"].size`-style rendering of a zod issue path. */
export function formatJsonPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out || '(top level)';
}

/** Validate parsed JSON; `source` names the file in errors. */
export function parseManifest(data: unknown, source = 'models.json'): Manifest {
  const r = manifestSchema.safeParse(data);
  if (r.success) return r.data;
  const lines = r.error.issues.slice(0, 20).map((i) => `  ${formatJsonPath(i.path)}: ${i.message}`);
  if (r.error.issues.length > 20) lines.push(`  … and ${r.error.issues.length - 20} more`);
  throw new ActionableError(`${source} is not a valid model manifest:\n${lines.join('\n')}`, {
    code: 'E_MANIFEST',
    hint: 'fix the fields named above (the schema is in src/models/manifest.ts)',
  });
}

/**
 * Parsed manifests by path: each file is read and validated once per process (every command,
 * the job schema and the workflow filler share it). An entry is re-read only when the file's
 * size or mtime changed (tests rewrite manifests in place).
 */
const manifestCache = new Map<string, { mtimeMs: number; size: number; manifest: Manifest }>();

/** Read and validate the manifest (default: docker/models.json), cached per process. Sync: callers are CLIs. */
export function loadManifest(path: string = defaultManifestPath()): Manifest {
  let st: { mtimeMs: number; size: number } | undefined;
  try {
    st = statSync(path);
  } catch {
    st = undefined; // readManifest reports the error
  }
  const hit = manifestCache.get(path);
  if (hit && st && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.manifest;
  const manifest = readManifest(path);
  if (st) manifestCache.set(path, { mtimeMs: st.mtimeMs, size: st.size, manifest });
  return manifest;
}

function readManifest(path: string): Manifest {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ActionableError(`cannot read the model manifest ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, {
      code: 'E_MANIFEST',
      hint: 'run from a checkout of the project, or set STEADYDANCER_MODELS_MANIFEST to the models.json to use',
      cause: err,
    });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ActionableError(`${path} is not valid JSON: ${(err as Error).message}`, { code: 'E_MANIFEST', cause: err });
  }
  return parseManifest(data, path);
}

export function variantNames(m: Manifest): string[] {
  return Object.keys(m.variants);
}

/** The variant by name, or a usage error listing the valid ones. */
export function getVariant(m: Manifest, name: string) {
  const v = m.variants[name];
  if (!v) throw new UsageError(`unknown variant "${name}"`, `choose one of: ${variantNames(m).join(', ')}`);
  return v;
}

export function getFile(m: Manifest, id: string): ManifestFile {
  const f = m.files[id];
  if (!f) throw new UsageError(`unknown model file id "${id}"`, `known ids: ${Object.keys(m.files).join(', ')}`);
  return { ...f, id };
}

/** The variant followed by its fallbacks: fp8 → fp16. */
export function fallbackChain(m: Manifest, variant: string): string[] {
  const chain: string[] = [];
  let cur: string | null = variant;
  while (cur !== null && !chain.includes(cur)) {
    getVariant(m, cur);
    chain.push(cur);
    cur = m.variants[cur]?.fallback ?? null;
  }
  return chain;
}

export interface VariantFilesOptions {
  /** Presets whose files are added (default: every preset, e.g. `fast`). */
  presets?: string[];
  /** Also add the workflow's optional files (alternative pose models, other text encoder). */
  includeOptional?: boolean;
  /** Extra file ids to add. */
  extra?: string[];
}

/**
 * Every file a variant needs: its diffusion model, its workflow's shared files (text encoder,
 * VAE, CLIP vision, pose models) and the presets' files (the fast LoRA). No duplicates; the
 * diffusion model first.
 */
export function variantFiles(m: Manifest, variant: string, opts: VariantFilesOptions = {}): ManifestFile[] {
  const v = getVariant(m, variant);
  const w = m.workflows[v.workflow]!;
  const ids: string[] = [v.diffusionModel];
  const te = w.textEncoderByVariant[variant];
  if (te) ids.push(te);
  ids.push(...w.requires);
  const presets = opts.presets ?? Object.keys(m.presets);
  for (const p of presets) {
    const preset = m.presets[p];
    if (!preset) throw new UsageError(`unknown preset "${p}"`, `known presets: ${Object.keys(m.presets).join(', ')}`);
    ids.push(...preset.files);
  }
  if (opts.includeOptional) ids.push(...w.optional);
  ids.push(...(opts.extra ?? []));
  return [...new Set(ids)].map((id) => getFile(m, id));
}

export interface TotalBytes {
  /** Sum of the sizes the manifest knows. */
  bytes: number;
  /** Ids of files whose size is unknown (null): `bytes` is then a lower bound. */
  unknown: string[];
}

/** Total download size of a variant (see variantFiles for what is included). */
export function variantTotalBytes(m: Manifest, variant: string, opts: VariantFilesOptions = {}): TotalBytes {
  return filesTotalBytes(variantFiles(m, variant, opts));
}

export function filesTotalBytes(files: readonly ManifestFile[]): TotalBytes {
  let bytes = 0;
  const unknown: string[] = [];
  for (const f of files) {
    if (f.size === null) unknown.push(f.id);
    else bytes += f.size;
  }
  return { bytes, unknown };
}

/** Where a file goes under a models directory: `<dir>/<folder>/<filename>`. */
export function targetPath(modelsDir: string, f: Pick<ManifestFileSpec, 'folder' | 'filename'>): string {
  return join(modelsDir, f.folder, f.filename);
}

/**
 * Every name a workflow may use for a model: the bare file name (what ComfyUI's loaders list
 * for a file directly in its folder) and `folder/filename`. For `lint`.
 */
export function workflowModelNames(m: Manifest): Set<string> {
  const names = new Set<string>();
  for (const f of Object.values(m.files)) {
    names.add(f.filename);
    names.add(`${f.folder}/${f.filename}`);
  }
  return names;
}

/** The manifest file a workflow's model name refers to (bare name or folder/name; `\` accepted). */
export function findFileByName(m: Manifest, name: string): ManifestFile | undefined {
  const n = name.replace(/\\/g, '/');
  for (const [id, f] of Object.entries(m.files)) {
    if (n === f.filename || n === `${f.folder}/${f.filename}`) return { ...f, id };
  }
  return undefined;
}

/** Hub URL of a file (for humans and errors): {endpoint}/{repo}/resolve/{revision}/{path}. */
export function resolveUrl(endpoint: string, f: Pick<ManifestFileSpec, 'repo' | 'revision' | 'commit' | 'path'>): string {
  const base = endpoint.replace(/\/+$/, '');
  const rev = f.commit ?? f.revision;
  const path = f.path.split('/').map(encodeURIComponent).join('/');
  return `${base}/${f.repo}/resolve/${encodeURIComponent(rev)}/${path}`;
}
