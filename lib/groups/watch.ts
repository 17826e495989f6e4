// Watch<T>: a reactive cell holding the latest value, with waits on conditions and a change stream.

/** Options of {@link Watch.waitFor}. */
export interface WaitOptions {
  /** Rejects the wait with `signal.reason` when aborted. */
  signal?: AbortSignal;
  /**
   * Rejects the wait with a `DOMException` named `"TimeoutError"` (what
   * `AbortSignal.timeout` uses) after this many milliseconds (0 to 2^31 - 1).
   */
  timeoutMs?: number;
}

/** Options of {@link Watch.changes}. */
export interface ChangesOptions {
  /** Ends the stream: the pending and every later `next()` rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/** Options of the {@link Watch} constructor. */
export interface WatchOptions<T> {
  /** When `set` counts as a change; default `Object.is`. */
  equals?: (a: T, b: T) => boolean;
}

/** The read side of a {@link Watch}: what an observer may do. */
export interface ReadonlyWatch<T> {
  /** The current value. */
  get(): T;
  /** See {@link Watch.waitFor}. */
  waitFor(predicate: (value: T) => boolean, options?: WaitOptions): Promise<T>;
  /** See {@link Watch.changes}. */
  changes(options?: ChangesOptions): AsyncIterableIterator<T>;
  /** True once {@link Watch.close} was called. */
  readonly closed: boolean;
}

/** The largest timeout timers handle; above it they fire at once. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

interface Waiter<T> {
  readonly predicate: (value: T) => boolean;
  readonly resolve: (value: T) => void;
  readonly reject: (reason: unknown) => void;
}

/**
 * A cell holding one value that observers can wait on.
 *
 * `set` stores a new value and, when it differs from the current one by the
 * equality function, evaluates every pending {@link waitFor} predicate
 * against it synchronously, in order of registration. So a predicate sees
 * every distinct value ever set while it waits, even values replaced in the
 * same tick; a stateful predicate can therefore detect transitions (for
 * example "went down"). Predicates must not call `set`.
 *
 * After {@link close}, pending and later waits reject with the close reason,
 * change streams end, and `set` is ignored. A Watch holds a timer only while
 * a `waitFor` with `timeoutMs` is pending.
 *
 * @example
 * ```ts
 * import { Watch } from "./watch.ts";
 *
 * const count = new Watch(0);
 * const ready = count.waitFor((n) => n >= 2, { timeoutMs: 1000 });
 * count.set(1);
 * count.set(2);
 * if ((await ready) !== 2) throw new Error("resolves with the value that satisfied it");
 * ```
 */
export class Watch<T> implements ReadonlyWatch<T> {
  #value: T;
  readonly #equals: (a: T, b: T) => boolean;
  readonly #waiters = new Set<Waiter<T>>();
  readonly #streams = new Set<ChangeStream<T>>();
  #closed = false;
  #reason: unknown = undefined;

  /**
   * @param initial the first value
   * @param options how to compare values
   * @throws {TypeError} when `options.equals` is given and is not a function
   */
  constructor(initial: T, options: WatchOptions<T> = {}) {
    const equals = options.equals ?? Object.is;
    if (typeof equals !== "function") {
      throw new TypeError("Cannot create Watch: equals must be a function");
    }
    this.#value = initial;
    this.#equals = equals;
  }

  /** The current value. */
  get(): T {
    return this.#value;
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Stores `value` if it differs from the current value by the equality
   * function, then resolves the waits whose predicate now holds and feeds the
   * change streams. A predicate that throws rejects its own wait only.
   *
   * @param value the new value
   * @returns true when the value changed; false when it was equal or the watch is closed
   */
  set(value: T): boolean {
    if (this.#closed || this.#equals(this.#value, value)) return false;
    this.#value = value;
    for (const waiter of [...this.#waiters]) {
      // An earlier waiter's predicate may not remove later ones, but a
      // settled waiter must never be evaluated again.
      if (!this.#waiters.has(waiter)) continue;
      let holds: boolean;
      try {
        holds = waiter.predicate(value);
      } catch (err) {
        this.#waiters.delete(waiter);
        waiter.reject(err);
        continue;
      }
      if (holds) {
        this.#waiters.delete(waiter);
        waiter.resolve(value);
      }
    }
    for (const stream of this.#streams) stream.push(value);
    return true;
  }

  /**
   * Waits until `predicate` holds for the value.
   *
   * The predicate is called at once with the current value; if it holds, the
   * returned promise is already resolved with that value (no `set` needed).
   * Otherwise it is called with each value `set` later, in order, and the
   * wait resolves with the first value for which it holds.
   *
   * @param predicate the condition; called synchronously, must not call `set`
   * @param options abort signal and timeout
   * @returns the first value for which `predicate` holds
   * @throws {TypeError} (as a rejection) when `signal` is not an AbortSignal or `timeoutMs` not a number
   * @throws {RangeError} (as a rejection) when `timeoutMs` is negative, fractional or above 2^31 - 1
   * @throws `signal.reason` when the signal is or becomes aborted (checked before the predicate)
   * @throws a `DOMException` named `"TimeoutError"` when `timeoutMs` elapses first
   * @throws the close reason when the watch is or becomes closed
   * @throws whatever `predicate` throws
   */
  async waitFor(predicate: (value: T) => boolean, options: WaitOptions = {}): Promise<T> {
    const { signal, timeoutMs } = options;
    checkSignal(signal, "wait");
    if (timeoutMs !== undefined) checkTimeout(timeoutMs);
    signal?.throwIfAborted();
    if (this.#closed) throw this.#reason;
    const now = this.#value;
    if (predicate(now)) return now;

    const { promise, resolve, reject } = deferred<T>();
    const waiter: Waiter<T> = { predicate, resolve, reject };
    const onAbort = () => reject(signal?.reason);
    let timer: ReturnType<typeof setTimeout> | undefined;
    this.#waiters.add(waiter);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (timeoutMs !== undefined) {
      timer = setTimeout(
        () => reject(new DOMException(`Condition not met within ${timeoutMs} ms`, "TimeoutError")),
        timeoutMs,
      );
    }
    try {
      return await promise;
    } finally {
      this.#waiters.delete(waiter);
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * A stream of the values set after this call (not the current one).
   *
   * Latest-value semantics: when the consumer falls behind, values set between
   * two `next()` calls collapse into the latest one, so a stream never buffers
   * more than one value. Use {@link waitFor} to observe every transition.
   * The stream ends (`done`) when the watch closes, after yielding a value
   * that was still unread, and when the consumer calls `return()` (as
   * `for await ... break` does).
   *
   * @param options an abort signal that ends the stream with `signal.reason`
   * @returns an async iterator over later values
   * @throws {TypeError} when `signal` is not an AbortSignal
   */
  changes(options: ChangesOptions = {}): AsyncIterableIterator<T> {
    checkSignal(options.signal, "watch changes");
    const stream = new ChangeStream<T>(options.signal, (s) => this.#streams.delete(s));
    if (this.#closed) stream.end();
    else this.#streams.add(stream);
    return stream;
  }

  /**
   * Closes the watch: every pending wait rejects with `reason`, later waits
   * reject with it too, change streams end, and `set` is ignored from now
   * on. The value stays readable. Idempotent: the first reason stays.
   *
   * @param reason what waits reject with; a group passes a `GroupTerminatedError`
   */
  close(reason: unknown = new Error("Cannot wait: watch is closed")): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reason = reason;
    for (const waiter of [...this.#waiters]) {
      this.#waiters.delete(waiter);
      waiter.reject(reason);
    }
    for (const stream of [...this.#streams]) stream.end();
  }
}

/** One `changes()` iterator: holds at most one unread value and at most one pending `next()`. */
class ChangeStream<T> implements AsyncIterableIterator<T> {
  #unread: { value: T } | undefined = undefined;
  #pending: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | undefined =
    undefined;
  #done = false;
  readonly #signal: AbortSignal | undefined;
  readonly #detach: (stream: ChangeStream<T>) => void;
  readonly #onAbort = () => {
    const pending = this.#pending;
    this.#finish();
    pending?.reject(this.#signal?.reason);
  };

  constructor(signal: AbortSignal | undefined, detach: (stream: ChangeStream<T>) => void) {
    this.#signal = signal;
    this.#detach = detach;
    signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  push(value: T): void {
    if (this.#done) return;
    const pending = this.#pending;
    if (pending !== undefined) {
      this.#pending = undefined;
      pending.resolve({ value, done: false });
    } else {
      this.#unread = { value };
    }
  }

  /** Ends the stream, keeping an unread value for the next `next()`. */
  end(): void {
    const pending = this.#pending;
    this.#finish();
    pending?.resolve({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#signal?.aborted) {
      this.#finish();
      this.#unread = undefined;
      return Promise.reject(this.#signal.reason);
    }
    const unread = this.#unread;
    if (unread !== undefined) {
      this.#unread = undefined;
      return Promise.resolve({ value: unread.value, done: false });
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    if (this.#pending !== undefined) {
      return Promise.reject(new TypeError("Cannot call next(): the previous next() is pending"));
    }
    const { promise, resolve, reject } = deferred<IteratorResult<T>>();
    this.#pending = { resolve, reject };
    return promise;
  }

  return(): Promise<IteratorResult<T>> {
    this.#unread = undefined;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  #finish(): void {
    this.#pending = undefined;
    if (this.#done) return;
    this.#done = true;
    this.#detach(this);
    this.#signal?.removeEventListener("abort", this.#onAbort);
  }
}

function deferred<T>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function checkSignal(signal: unknown, what: string): void {
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(`Cannot ${what}: signal must be an AbortSignal`);
  }
}

function checkTimeout(ms: unknown): void {
  if (typeof ms !== "number") {
    throw new TypeError(`Cannot wait: timeoutMs must be a number, got ${typeof ms}`);
  }
  if (!Number.isInteger(ms) || ms < 0 || ms > MAX_TIMEOUT_MS) {
    throw new RangeError(
      `Cannot wait: timeoutMs must be an integer from 0 to ${MAX_TIMEOUT_MS}, got ${ms}`,
    );
  }
}
