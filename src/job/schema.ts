/**
 * The dance job's input: `image` and `video` (an http(s) URL, a data URI or bare base64) plus
 * the workflow parameters. The parameters' schema is the pipeline's one (DanceParams in
 * src/comfy/params.ts) — the same rules for smoke, generate and the worker — so this file only
 * adds the media fields and turns zod's issues into errors that name every bad field at once.
 */
import { z } from 'zod';
import { InputError } from './media.js';

export const MediaField = z
  .string({ error: 'is required: an https URL, a data URI or base64' })
  .min(1, { error: 'is empty' })
  .max(300 * 1024 * 1024, { error: 'is too large to be sent inline; pass an https URL' });

export const MediaInput = z.object({ image: MediaField, video: MediaField });

/** One issue as a field name and a message (zod's own issues and ParamsError's alike). */
function issueParts(issue: { path?: unknown; message?: string; code?: string; keys?: string[] }): { field: string; message: string } {
  const field = Array.isArray(issue.path) ? issue.path.map(String).join('.') || 'input' : String(issue.path ?? '') || 'input';
  const message = issue.code === 'unrecognized_keys' && issue.keys ? `unknown field(s): ${issue.keys.join(', ')}` : (issue.message ?? 'is invalid');
  return { field, message };
}

/** Every issue at once, as one InputError reading "a: …; b: …" (a job with three bad fields hears of all three). */
export function inputErrorOf(issues: ReadonlyArray<{ path?: unknown; message?: string; code?: string; keys?: string[] }>): InputError {
  const [first, ...rest] = issues.map(issueParts);
  if (!first) return new InputError('input', 'is invalid');
  return new InputError(first.field, [first.message, ...rest.map((r) => `${r.field}: ${r.message}`)].join('; '));
}

/**
 * Split a job's input into the media fields (checked here) and the workflow parameters (left
 * to the pipeline's resolver, which rejects unknown fields so that a typo — "step" for "steps" —
 * is an error, not a silent default).
 */
export function splitJobInput(raw: unknown): { media: z.infer<typeof MediaInput>; params: Record<string, unknown> } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InputError('input', 'must be a JSON object with "image", "video" and the workflow parameters');
  const { image, video, ...params } = raw as Record<string, unknown>;
  const r = MediaInput.safeParse({ image, video });
  if (!r.success) throw inputErrorOf(r.error.issues);
  return { media: r.data, params };
}

/**
 * The whole job input checked at once: the media fields and the workflow parameters (by the
 * pipeline's resolver), every bad field of both in one InputError. Errors of the resolver that
 * carry `issues: [{path, message}]` name their fields; others pass through.
 */
export function checkJobInput<P>(raw: unknown, resolve: (params: Record<string, unknown>) => P): { media: z.infer<typeof MediaInput>; params: P } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return splitJobInput(raw) as never; // throws the shape error
  const { image, video, ...rawParams } = raw as Record<string, unknown>;
  const media = MediaInput.safeParse({ image, video });
  const issues: Array<{ path?: unknown; message?: string; code?: string; keys?: string[] }> = media.success ? [] : [...media.error.issues];
  let params: P | undefined;
  try {
    params = resolve(rawParams);
  } catch (err) {
    const more = (err as { issues?: Array<{ path?: unknown; message?: string }> }).issues;
    if (!more?.length) throw err;
    issues.push(...more);
  }
  if (issues.length || !media.success) throw inputErrorOf(issues);
  return { media: media.data, params: params as P };
}

/** For the local API: the error text for a 400, or undefined when the input parses. */
export function inputProblem(raw: unknown, resolve: (params: Record<string, unknown>) => unknown): string | undefined {
  try {
    checkJobInput(raw, resolve);
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
