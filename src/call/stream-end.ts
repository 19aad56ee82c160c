import { Code, ConnectError } from "@connectrpc/connect";

/**
 * onStreamEnd calls `fn` exactly once when a response stream ends (error
 * undefined), fails (the error), or is abandoned by its reader (a CANCELED
 * error). Per-call bookkeeping (load, breakers, listeners) hangs off it.
 *
 * Layers stacked on a stream none of them has started reading share one
 * wrapper (see HookedStream): each `for await` layer costs promises per
 * message, and a call's mesh layers would otherwise add half a dozen.
 */
export function onStreamEnd<T>(
  iterable: AsyncIterable<T>,
  fn: (error: unknown) => void,
): AsyncIterable<T> {
  const s = hooked(iterable);
  s.stages.push({ map: undefined, end: fn, called: false });
  return s;
}

/**
 * prependFirst returns an iterable that yields an already-read first result,
 * then the rest of `it`. The retry interceptor reads a stream's first message
 * before committing to an attempt.
 */
export function prependFirst<T>(first: IteratorResult<T>, it: AsyncIterator<T>): AsyncIterable<T> {
  if (it instanceof HookedStream && it.pending === undefined && !it.ended) {
    // Stages added from now on see this result too, as with a fresh wrapper.
    it.pending = first as IteratorResult<unknown>;
    it.started = false;
    return it as HookedStream<T>;
  }
  const s = new HookedStream<T>(undefined, it);
  s.pending = first;
  return s;
}

/** mapStreamErrors passes every error a stream throws through `map` (to classify it). */
export function mapStreamErrors<T>(
  iterable: AsyncIterable<T>,
  map: (error: unknown) => unknown,
): AsyncIterable<T> {
  const s = hooked(iterable);
  s.stages.push({ map, end: undefined, called: false });
  return s;
}

/**
 * isReadPending says whether a stream built by onStreamEnd has a next() in
 * flight; false for any other iterable.
 * @private
 */
export function isReadPending(iterable: AsyncIterable<unknown>): boolean {
  return iterable instanceof HookedStream && iterable.reading;
}

/** Stage is one layer fused into a HookedStream: an error mapping or an end hook. */
interface Stage {
  readonly map: ((error: unknown) => unknown) | undefined;
  readonly end: ((error: unknown) => void) | undefined;
  called: boolean;
}

// hooked joins the stream's own wrapper while nobody has read from it (later
// stages then see every result, as a fresh wrapper would), else wraps it.
function hooked<T>(iterable: AsyncIterable<T>): HookedStream<T> {
  if (iterable instanceof HookedStream && !iterable.started && !iterable.ended) {
    return iterable as HookedStream<T>;
  }
  return new HookedStream(iterable, undefined);
}

// HookedStream is one response stream with its layers' stages applied in
// order, innermost first, as separate wrappers would: an error goes through
// each map, and each end hook sees it as mapped so far. It is its own
// iterator (a response stream is read once), and a read costs one `then`.
class HookedStream<T> implements AsyncIterable<T>, AsyncIterator<T> {
  readonly stages: Stage[] = [];
  /** pending is a first result read before the stream was handed on (prependFirst). */
  pending: IteratorResult<unknown> | undefined;
  started = false;
  /** ended: the end hooks ran (end, failure or abandonment). */
  ended = false;
  reading = false;

  constructor(
    private readonly source: AsyncIterable<T> | undefined,
    private it: AsyncIterator<T> | undefined,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this;
  }

  private iterator(): AsyncIterator<T> {
    let it = this.it;
    if (it === undefined) {
      it = (this.source as AsyncIterable<T>)[Symbol.asyncIterator]();
      this.it = it;
    }
    return it;
  }

  next(): Promise<IteratorResult<T>> {
    this.started = true;
    const first = this.pending as IteratorResult<T> | undefined;
    if (first !== undefined) {
      this.pending = undefined;
      if (first.done === true) this.fire(undefined);
      return Promise.resolve(first);
    }
    let it: AsyncIterator<T>;
    try {
      it = this.iterator();
    } catch (e) {
      return Promise.reject(this.failed(e));
    }
    this.reading = true;
    return it.next().then(this.onResult, this.onError);
  }

  // Arrow properties: made once per stream, not per read.
  private readonly onResult = (r: IteratorResult<T>): IteratorResult<T> => {
    this.reading = false;
    if (r.done === true) this.fire(undefined);
    return r;
  };

  private readonly onError = (e: unknown): never => {
    this.reading = false;
    throw this.failed(e);
  };

  // failed runs an error through the stages: maps rewrite it, end hooks see it.
  private failed(e: unknown): unknown {
    let error = e;
    for (const s of this.stages) {
      if (s.map !== undefined) {
        error = s.map(error);
      } else if (!s.called) {
        s.called = true;
        (s.end as (error: unknown) => void)(error);
      }
    }
    this.ended = true;
    return error;
  }

  // fire calls the end hooks not called yet with the same outcome.
  private fire(error: unknown): void {
    this.ended = true;
    for (const s of this.stages) {
      if (s.end !== undefined && !s.called) {
        s.called = true;
        s.end(error);
      }
    }
  }

  async return(value?: unknown): Promise<IteratorResult<T>> {
    this.started = true;
    this.pending = undefined;
    if (this.stages.some((s) => s.end !== undefined && !s.called)) {
      this.fire(new ConnectError("stream abandoned by the caller", Code.Canceled));
    }
    this.ended = true;
    const it = this.iterator();
    return (
      ((await it.return?.(value)) as IteratorResult<T> | undefined) ?? {
        done: true,
        value: undefined,
      }
    );
  }

  async throw(e?: unknown): Promise<IteratorResult<T>> {
    this.started = true;
    this.pending = undefined;
    this.fire(e);
    // A wrapper that maps errors never passed throw() on; an end hook did.
    const it = this.iterator();
    if (it.throw !== undefined && this.stages.every((s) => s.map === undefined)) {
      return it.throw(e);
    }
    throw e;
  }
}
