/**
 * The model manifest as doctor and lint need it: the total size of a variant and the file
 * names workflows may load. Until the manifest (docker/models.json) lands this says "unknown".
 */
export interface ManifestView {
  source: string;
  /** Every file name the manifest knows (basename and relative path under models/). */
  files: Set<string>;
}

export async function variantBytes(_root: string, _variant: string): Promise<{ bytes: number; source: string } | null> {
  return null;
}

export async function manifestView(_root: string): Promise<ManifestView | null> {
  return null;
}
