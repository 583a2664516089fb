/** What a dataset is made of: items naming where their pixels come from, their captions and labels. */

/** Where an item's image comes from: a file inside the dataset folder, or pixels shipped in a package. */
export type ImageSource =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'pixels'; readonly pixels: Uint8Array; readonly width: number; readonly height: number; readonly channels: 1 | 3 };

export interface DatasetItem {
  /** Names the item in warnings and errors: the file path, or e.g. "mnist:train:3:17". */
  readonly id: string;
  readonly image: ImageSource;
  /** Caption candidates (one is picked per sample); null: unconditional. */
  readonly captions: readonly string[] | null;
  /** Class label id; null when the dataset has no classes. */
  readonly label: number | null;
}

/** A file left out by the first scan, and why. */
export interface SkippedFile {
  readonly file: string;
  readonly reason: string;
}

/** Reported during the first scan of a folder (every `every` files and at the end of each phase). */
export interface ScanProgress {
  readonly phase: 'listing' | 'validating';
  readonly done: number;
  /** Known once listing is over; null while listing. */
  readonly total: number | null;
}
