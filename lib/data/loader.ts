/**
 * The loader: a seeded order per epoch, batches decoded ahead of the consumer (a bounded prefetch
 * queue; decodes share one FIFO semaphore sized by the thread budget), and a position that is part of
 * the checkpoint — restoring a saved state continues with the exact next batch. A batch reaches native
 * code as one uint8 NHWC buffer, converted in one call to float32 NCHW in [-1, 1].
 *
 * With aspect-ratio buckets (data.buckets) every batch holds one bucket: each epoch shuffles every
 * bucket's samples and cuts them into batches (a bucket's last batch may be short, or is dropped with
 * dropLast), then shuffles the batches of all buckets together — all from (seed, epoch), so the number of
 * batches per epoch is fixed and the same (epoch, batch) position resumes exactly.
 */
import sharp from 'sharp';
import { DatasetError } from '../errors';
import { imagesToTensor } from '../native/images';
import { setThreads } from '../native/runtime';
import type { Tensor } from '../native/tensor';
import { bucketSignature } from './buckets';
import type { Dataset } from './dataset';
import { firstLine } from './decode';
import { Semaphore } from './limit';
import { hashInts, permutation, Rng, STREAM } from './random';
import { planThreads, type ThreadPlan } from './threads';

/** Where the loader stands: serialisable (JSON), saved with a training checkpoint. */
export interface LoaderState {
  readonly version: 1;
  readonly seed: number;
  /** The epoch and batch index (within it) of the next batch the consumer receives. */
  readonly epoch: number;
  readonly batch: number;
  /** Checked on restore: the same dataset and batching are needed for the same order. */
  readonly size: number;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  /** With aspect-ratio buckets: their sizes, counts and assignment (buckets.ts's bucketSignature). */
  readonly buckets?: string;
}

interface BatchInfo {
  readonly epoch: number;
  /** Index of the batch within its epoch. */
  readonly batch: number;
  /** Batches before this one since epoch 0 (epoch × batchesPerEpoch + batch). */
  readonly step: number;
  /** Sample indices (in items × repeats space) of the samples in the batch, in batch order. */
  readonly indices: number[];
  /** Item ids (file paths, or e.g. "mnist:3:17"). */
  readonly ids: string[];
  /** One per sample; null when the dataset has no captions. */
  readonly captions: string[] | null;
  /** Class label ids; null when the dataset has no classes. */
  readonly labels: number[] | null;
  /** Samples of this batch that could not be decoded (skipped, so the batch is smaller). */
  readonly skipped: string[];
}

/** Decoded pixels, uint8 [N, H, W, C]. */
export interface RawBatch extends BatchInfo {
  readonly pixels: Uint8Array;
  readonly shape: [number, number, number, number];
}

/** The model's input: float32 [N, C, H, W] in [-1, 1]. dispose() frees it. */
export interface Batch extends BatchInfo {
  readonly pixels: Tensor;
  /** The same pixels as decoded, uint8 [N, H, W, C] (already in JS: hash them rather than reading the tensor back). */
  readonly rawPixels: Uint8Array;
  dispose(): void;
}

export interface LoaderOptions {
  /** Defaults: the dataset's options (data.batchSize, data.seed, ...). */
  readonly batchSize?: number;
  readonly seed?: number;
  readonly shuffle?: boolean;
  readonly dropLast?: boolean;
  readonly prefetch?: number;
  readonly decodeConcurrency?: number;
  readonly torchThreads?: number;
  /** Set torch's intra-op threads to the budget's share on the first next() (default true). */
  readonly applyTorchThreads?: boolean;
  /** Start from a saved position. */
  readonly state?: LoaderState;
  /**
   * Data-parallel training: this process reads batches rank, rank + worldSize, rank + 2·worldSize, …
   * of the one global sequence of batches (each epoch's shuffled order, cut in batchSize pieces), so
   * the ranks read disjoint shards and together every sample once per epoch. state() is then the
   * position of the next global group of worldSize batches: any world size resumes from it.
   */
  readonly shard?: { readonly rank: number; readonly worldSize: number };
  /** Skipped images and budget notes (default: console.warn). */
  readonly onWarning?: (message: string) => void;
}

interface Position {
  epoch: number;
  batch: number;
}

export class DataLoader {
  readonly batchSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly prefetch: number;
  readonly threads: ThreadPlan;
  readonly batchesPerEpoch: number;
  /** Decode failures met while loading (validate "header" lets truncated files through the scan). */
  skippedAtLoad = 0;

  private readonly dataset: Dataset;
  private readonly semaphore: Semaphore;
  private readonly onWarning: (message: string) => void;
  private readonly warned = new Set<string>();
  private readonly orders = new Map<number, Uint32Array>();
  private readonly bucketEpochs = new Map<number, Uint32Array[]>();
  private readonly bucketSignature: string | undefined;
  private readonly applyTorchThreads: boolean;
  /** Data-parallel shard: this process takes every `stride`-th batch, starting at `offset`. */
  private readonly stride: number;
  private readonly offset: number;
  private torchThreadsApplied = false;
  private position: Position = { epoch: 0, batch: 0 };
  /** The batch after the last one next() returned, already being converted (see next()). */
  private ahead: { position: Position; batch: Promise<Batch> } | undefined;
  private scheduled: Position = { epoch: 0, batch: 0 };
  private pending: Array<{ position: Position; result: Promise<RawBatch> }> = [];
  private closed = false;
  /** Bumped by restore() and close(): work scheduled under an older generation stops decoding. */
  private generation = 0;

  /** [H, W, C] of every sample (the training resolution). */
  get sampleShape(): [number, number, number] {
    return this.dataset.sampleShape;
  }

  /** Samples per epoch (the dataset's items × repeats): batch indices lie in [0, size). */
  get size(): number {
    return this.dataset.size;
  }

  constructor(dataset: Dataset, options: LoaderOptions = {}) {
    const d = dataset.options;
    this.dataset = dataset;
    this.batchSize = options.batchSize ?? d.batchSize;
    this.seed = options.seed ?? d.seed;
    this.shuffle = options.shuffle ?? d.shuffle;
    this.dropLast = options.dropLast ?? d.dropLast;
    this.prefetch = options.prefetch ?? d.prefetch;
    this.onWarning = options.onWarning ?? ((message: string) => console.warn(`difftune: ${message}`));
    this.applyTorchThreads = options.applyTorchThreads ?? true;
    this.threads = planThreads({ torchThreads: options.torchThreads ?? d.torchThreads, decodeConcurrency: options.decodeConcurrency ?? d.decodeConcurrency });
    for (const w of this.threads.warnings) this.onWarning(w);
    // Parallelism comes from decoding several images at once; libvips' own threads would oversubscribe.
    sharp.concurrency(1);
    sharp.cache(false);
    this.semaphore = new Semaphore(this.threads.decodeConcurrency);
    const n = dataset.size;
    const buckets = dataset.buckets;
    this.bucketSignature = buckets === null ? undefined : bucketSignature(buckets);
    const batchesOf = (samples: number) => (this.dropLast ? Math.floor(samples / this.batchSize) : Math.ceil(samples / this.batchSize));
    this.batchesPerEpoch = buckets === null ? batchesOf(n) : buckets.counts.reduce((sum, items) => sum + batchesOf(items * dataset.options.repeats), 0);
    if (this.batchesPerEpoch === 0)
      throw new DatasetError(
        buckets === null
          ? `batchSize ${this.batchSize} is larger than the dataset (${n} samples) and dropLast is set: an epoch would have no batch`
          : `batchSize ${this.batchSize} is larger than every aspect-ratio bucket (${buckets.counts.map((c) => c * dataset.options.repeats).join(', ')} samples) and dropLast is set: an epoch would have no batch`,
      );
    if (this.batchSize > n) {
      this.onWarning(`batchSize ${this.batchSize} is larger than the dataset (${n} samples): each batch holds only those ${n}`);
    }
    const shard = options.shard ?? { rank: 0, worldSize: 1 };
    if (!Number.isSafeInteger(shard.worldSize) || shard.worldSize < 1 || !Number.isSafeInteger(shard.rank) || shard.rank < 0 || shard.rank >= shard.worldSize)
      throw new DatasetError(`shard: expected 0 ≤ rank < worldSize but found rank ${shard.rank}, worldSize ${shard.worldSize}`);
    this.stride = shard.worldSize;
    this.offset = shard.rank;
    this.position = this.fromLinear(this.offset);
    this.scheduled = { ...this.position };
    if (options.state) this.restore(options.state);
  }

  /** The position of the next batch next() returns, for the checkpoint. */
  state(): LoaderState {
    const next = this.ahead?.position ?? this.position;
    const group = this.fromLinear(this.toLinear(next) - this.offset);
    return {
      version: 1,
      seed: this.seed,
      epoch: group.epoch,
      batch: group.batch,
      size: this.dataset.size,
      batchSize: this.batchSize,
      shuffle: this.shuffle,
      dropLast: this.dropLast,
      ...(this.bucketSignature === undefined ? {} : { buckets: this.bucketSignature }),
    };
  }

  /** Continues from a saved state; batches decoded ahead are dropped. */
  restore(state: LoaderState): void {
    const mine = this.state();
    for (const key of ['version', 'seed', 'size', 'batchSize', 'shuffle', 'dropLast', 'buckets'] as const) {
      if (state[key] !== mine[key])
        throw new DatasetError(
          `loader state: "${key}" is ${JSON.stringify(state[key])} in the saved state but ${JSON.stringify(mine[key])} here; the same dataset and batching are needed to resume`,
        );
    }
    if (!Number.isSafeInteger(state.epoch) || state.epoch < 0 || !Number.isSafeInteger(state.batch) || state.batch < 0 || state.batch >= this.batchesPerEpoch)
      throw new DatasetError(`loader state: expected epoch ≥ 0 and batch in [0, ${this.batchesPerEpoch}) but found epoch ${state.epoch}, batch ${state.batch}`);
    this.position = this.fromLinear(this.toLinear({ epoch: state.epoch, batch: state.batch }) + this.offset);
    this.scheduled = { ...this.position };
    this.generation++;
    this.pending = [];
    void this.dropAhead();
  }

  /**
   * Sets torch's intra-op threads to this loader's share of the cores, once (the first next() does it
   * too). A run calls it as it opens the loader, so that its torch work before the first batch — the
   * held-out batch's encoding, the step-0 validation — runs under the budget rather than libtorch's
   * default of every core beside the decoders (measured 20× slower on a busy 2-core machine).
   */
  async applyThreadBudget(): Promise<void> {
    if (!this.applyTorchThreads || this.torchThreadsApplied) return;
    this.torchThreadsApplied = true;
    await setThreads(this.threads.torchThreads);
  }

  /**
   * The next batch as the model's float tensor. The batch after it is converted right away (on a libuv
   * worker, not the compute thread), so while the consumer trains on this one, the next is made ready.
   */
  async next(): Promise<Batch> {
    await this.applyThreadBudget();
    const current = this.ahead ?? this.take();
    this.ahead = undefined;
    const batch = await current.batch;
    if (!this.closed) this.ahead = this.take();
    return batch;
  }

  /** Takes the next raw batch off the queue and starts its conversion; `position` is where it was taken. */
  private take(): { position: Position; batch: Promise<Batch> } {
    const position = this.position;
    const batch = this.nextRaw().then(async (raw) => {
      const { pixels, shape, ...info } = raw;
      const tensor = await imagesToTensor(pixels, shape);
      return { ...info, pixels: tensor, rawPixels: pixels, dispose: () => tensor.dispose() };
    });
    batch.catch(() => undefined); // surfaced by the next() that returns this batch
    return { position, batch };
  }

  /** Drops the batch converted ahead (restore, close), freeing its tensor once it exists. */
  private dropAhead(): Promise<unknown> {
    const ahead = this.ahead;
    this.ahead = undefined;
    return ahead
      ? ahead.batch.then(
          (b) => b.dispose(),
          () => undefined,
        )
      : Promise.resolve();
  }

  /** The next batch as decoded uint8 pixels (pure TypeScript: never loads the addon). Use it or next(), not both on one loader: next() takes one batch ahead. */
  async nextRaw(): Promise<RawBatch> {
    for (;;) {
      if (this.closed) throw new DatasetError('DataLoader used after close()');
      this.fill();
      const head = this.pending.shift()!;
      this.position = this.advance(head.position);
      this.fill();
      const batch = await head.result;
      if (batch.indices.length > 0) return batch;
      // Every image of the batch was unreadable: the consumer gets the next one instead.
    }
  }

  /** Batches forever (epoch after epoch); break out of the loop to stop. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Batch> {
    for (;;) yield await this.next();
  }

  /** Stops prefetching (decodes not yet started never start); resolves once those in flight are done. Later calls throw. */
  async close(): Promise<void> {
    this.closed = true;
    this.generation++;
    const inFlight = this.pending.map((p) => p.result);
    this.pending = [];
    await Promise.allSettled([...inFlight, this.dropAhead()]);
  }

  /** The sample order of an epoch (identity without shuffle); the last two epochs are kept. */
  order(epoch: number): Uint32Array {
    let order = this.orders.get(epoch);
    if (!order) {
      const n = this.dataset.size;
      order = this.shuffle ? permutation(n, new Rng(hashInts(this.seed, STREAM.order, epoch))) : Uint32Array.from({ length: n }, (_, i) => i);
      this.orders.set(epoch, order);
      for (const key of this.orders.keys()) if (key < epoch - 1) this.orders.delete(key);
    }
    return order;
  }

  /**
   * With buckets: the sample indices of each batch of an epoch, in the order they are served. Every bucket's
   * samples (in items × repeats space) are shuffled with their own stream and cut into batches; then the batches
   * of all buckets are shuffled together. The last two epochs are kept.
   */
  bucketBatches(epoch: number): Uint32Array[] {
    const plan = this.dataset.buckets;
    if (plan === null) throw new DatasetError('bucketBatches: this dataset has no aspect-ratio buckets (data.buckets)');
    let batches = this.bucketEpochs.get(epoch);
    if (!batches) {
      const items = this.dataset.items.length;
      const members = plan.sizes.map(() => [] as number[]);
      for (let i = 0; i < this.dataset.size; i++) members[plan.ofItem[i % items]!]!.push(i);
      batches = [];
      for (const [b, list] of members.entries()) {
        const order = this.shuffle ? permutation(list.length, new Rng(hashInts(this.seed, STREAM.order, epoch, b))) : Uint32Array.from(list, (_, k) => k);
        const full = this.dropLast ? list.length - (list.length % this.batchSize) : list.length;
        for (let start = 0; start < full; start += this.batchSize)
          batches.push(Uint32Array.from(order.subarray(start, Math.min(start + this.batchSize, full)), (k) => list[k]!));
      }
      if (this.shuffle) {
        const mix = permutation(batches.length, new Rng(hashInts(this.seed, STREAM.bucketBatches, epoch)));
        batches = Array.from(mix, (k) => batches![k]!);
      }
      this.bucketEpochs.set(epoch, batches);
      for (const key of this.bucketEpochs.keys()) if (key < epoch - 1) this.bucketEpochs.delete(key);
    }
    return batches;
  }

  private advance(p: Position): Position {
    return this.fromLinear(this.toLinear(p) + this.stride);
  }

  /** Batches before p since epoch 0 (every epoch has batchesPerEpoch). */
  private toLinear(p: Position): number {
    return p.epoch * this.batchesPerEpoch + p.batch;
  }

  private fromLinear(index: number): Position {
    return { epoch: Math.floor(index / this.batchesPerEpoch), batch: index % this.batchesPerEpoch };
  }

  private fill(): void {
    while (this.pending.length < this.prefetch + 1) {
      const position = this.scheduled;
      const result = this.produce(position);
      result.catch(() => undefined); // surfaced when the consumer reaches this batch, not before
      this.pending.push({ position, result });
      this.scheduled = this.advance(position);
    }
  }

  private async produce(p: Position): Promise<RawBatch> {
    let indices: number[];
    if (this.dataset.buckets !== null) indices = Array.from(this.bucketBatches(p.epoch)[p.batch]!);
    else {
      const order = this.order(p.epoch);
      const start = p.batch * this.batchSize;
      indices = Array.from(order.subarray(start, Math.min(start + this.batchSize, order.length)));
    }
    const generation = this.generation;
    // One shape per batch: every sample of a bucketed batch has its bucket's size.
    const [h, w, c] = this.dataset.sampleShapeOf(indices[0]!);
    const bytes = h * w * c;
    const pixels = new Uint8Array(indices.length * bytes);
    const results = await Promise.all(
      indices.map((index, k) =>
        this.semaphore
          .run(() =>
            generation !== this.generation
              ? Promise.reject(new DatasetError('batch dropped: the loader was closed or restored'))
              : this.dataset.loadSample(index, p.epoch, pixels.subarray(k * bytes, (k + 1) * bytes)),
          )
          .then(
            (info) => ({ ok: true as const, info }),
            (error: unknown) => ({ ok: false as const, error }),
          ),
      ),
    );
    if (generation !== this.generation) throw new DatasetError('batch dropped: the loader was closed or restored');
    const kept: number[] = [];
    const skipped: string[] = [];
    results.forEach((r, k) => {
      const id = this.dataset.item(indices[k]!).id;
      if (r.ok) return void kept.push(k);
      const reason = firstLine(r.error);
      if (this.dataset.options.onBadImage === 'fail') throw new DatasetError(`${id}: cannot decode: ${reason} (data.onBadImage is "fail")`, { cause: r.error });
      skipped.push(id);
      this.skippedAtLoad++;
      if (!this.warned.has(id)) {
        this.warned.add(id);
        this.onWarning(`skipping ${id}: ${reason}`);
      }
    });
    // Close the gaps of skipped samples (rare), so the buffer holds exactly the kept ones in order.
    kept.forEach((k, slot) => {
      if (k !== slot) pixels.copyWithin(slot * bytes, k * bytes, (k + 1) * bytes);
    });
    const infos = kept.map((k) => (results[k] as { ok: true; info: { caption: string | null; label: number | null } }).info);
    const hasCaptions = infos.length > 0 ? infos[0]!.caption !== null : this.dataset.items[0]!.captions !== null;
    const hasLabels = this.dataset.classNames !== null;
    return {
      epoch: p.epoch,
      batch: p.batch,
      step: p.epoch * this.batchesPerEpoch + p.batch,
      indices: kept.map((k) => indices[k]!),
      ids: kept.map((k) => this.dataset.item(indices[k]!).id),
      captions: hasCaptions ? infos.map((i) => i.caption ?? '') : null,
      labels: hasLabels ? infos.map((i) => i.label ?? 0) : null,
      skipped,
      pixels: kept.length === indices.length ? pixels : pixels.subarray(0, kept.length * bytes),
      shape: [kept.length, h, w, c],
    };
  }
}
