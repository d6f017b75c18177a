/**
 * Find the video among a finished job's outputs. ComfyUI's SaveVideo and the pack's
 * SteadyDancerSaveVideo (the shipped workflow's "Save video") report their file under `images` with
 * `animated: [true]` (comfy_api PreviewVideo); VideoHelperSuite's VHS_VideoCombine
 * under `gifs`; some nodes under `videos`. We look at all three and pick by file extension.
 */
import type { FileRef } from './client.js';

export const VIDEO_EXTENSIONS = ['.mp4', '.webm', '.mov', '.mkv'] as const;
const LISTS = ['images', 'gifs', 'videos'] as const;

export interface OutputFile extends FileRef {
  nodeId: string;
  /** The output list it was found in. */
  list: string;
  format?: string;
}

function isRef(x: unknown): x is FileRef {
  return !!x && typeof x === 'object' && typeof (x as FileRef).filename === 'string';
}

/** All files among the outputs, node by node (ids in numeric order). */
export function outputFiles(outputs: Record<string, Record<string, unknown>>): OutputFile[] {
  const out: OutputFile[] = [];
  const ids = Object.keys(outputs).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  for (const nodeId of ids) {
    const o = outputs[nodeId] ?? {};
    for (const list of LISTS) {
      const arr = o[list];
      if (!Array.isArray(arr)) continue;
      for (const f of arr)
        if (isRef(f))
          out.push({
            nodeId,
            list,
            filename: f.filename,
            subfolder: f.subfolder ?? '',
            type: f.type ?? 'output',
            ...(typeof (f as { format?: string }).format === 'string' ? { format: (f as { format?: string }).format } : {}),
          });
    }
  }
  return out;
}

/**
 * The mp4 (or other video) a job produced; `preferNode` picks a node's output when several exist.
 * Temp previews (type "temp") lose to saved outputs.
 */
export function findVideo(outputs: Record<string, Record<string, unknown>>, opts: { preferNode?: string; extensions?: readonly string[] } = {}): OutputFile | undefined {
  const exts = opts.extensions ?? VIDEO_EXTENSIONS;
  const vids = outputFiles(outputs).filter((f) => exts.some((e) => f.filename.toLowerCase().endsWith(e)));
  if (vids.length === 0) return undefined;
  const rank = (f: OutputFile) => (f.nodeId === opts.preferNode ? 0 : 2) + (f.type === 'output' ? 0 : 1) + (f.filename.toLowerCase().endsWith('.mp4') ? 0 : 0.5);
  return [...vids].sort((a, b) => rank(a) - rank(b))[0];
}
