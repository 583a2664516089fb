/**
 * metadata.jsonl of a diffusers / Hugging Face `imagefolder`: one JSON object per line with
 * `file_name` and a caption column. A bad line stops the run with the file and line number.
 */
import { promises as fs } from 'node:fs';
import { z } from 'zod';
import { DatasetError, describeValue } from '../errors';
import { decodeUtf8 } from '../util/utf8';

export const METADATA_FILE = 'metadata.jsonl';

const lineSchema = z.object({ file_name: z.string() }).passthrough();
const captionSchema = z.union([z.string(), z.array(z.string()).nonempty()]);

export interface MetadataEntry {
  readonly line: number;
  readonly fileName: string;
  readonly captions: readonly string[];
}

/** Parses the file; blank lines are allowed, anything else must be a valid entry. `onWarning` hears of bytes that are not UTF-8. */
export async function readMetadata(file: string, captionColumn: string, onWarning: (message: string) => void = () => undefined): Promise<MetadataEntry[]> {
  const text = decodeUtf8(await fs.readFile(file), file, onWarning);
  const entries: MetadataEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '') continue;
    const where = `${file}:${i + 1}`;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (error) {
      throw new DatasetError(`${where}: invalid JSON (${(error as Error).message})`, { cause: error });
    }
    const parsed = lineSchema.safeParse(json);
    if (!parsed.success) {
      const found =
        json !== null && typeof json === 'object' && !Array.isArray(json) ? describeValue((json as Record<string, unknown>).file_name) : describeValue(json);
      throw new DatasetError(`${where}: expected an object with a string "file_name" but found ${found}`);
    }
    const caption = captionSchema.safeParse(parsed.data[captionColumn]);
    if (!caption.success)
      throw new DatasetError(
        `${where}: expected caption column "${captionColumn}" to be a string or a non-empty list of strings but found ${describeValue(parsed.data[captionColumn])} (set data.captionColumn, or data.layout "plain" for no captions)`,
      );
    entries.push({ line: i + 1, fileName: parsed.data.file_name, captions: typeof caption.data === 'string' ? [caption.data] : caption.data });
  }
  return entries;
}
