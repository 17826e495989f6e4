// An async queue of incoming things (connections, streams) shared by the transport adapters.

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

type Waiter<T> = (result: IteratorResult<T, undefined>) => void;

/**
 * An unbounded queue with any number of async-iterating consumers, each item
 * going to exactly one of them. `end()` lets consumers drain what is queued and
 * then finish; `close()` finishes them at once and hands back what nobody took.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #waiters: Waiter<T>[] = [];
  #ended = false;

  /** Adds an item; false (and nothing added) once the queue has ended. */
  push(item: T): boolean {
    if (this.#ended) return false;
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter({ value: item, done: false });
    else this.#items.push(item);
    return true;
  }

  /** No more items: consumers get the queued ones, then finish. Idempotent. */
  end(): void {
    this.#ended = true;
    for (const w of this.#waiters.splice(0)) w(DONE);
  }

  /** Ends at once; returns the items nobody took (for the caller to dispose of). */
  close(): T[] {
    this.end();
    return this.#items.splice(0);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    let stopped = false;
    const own = new Set<Waiter<T>>();
    const iterator: AsyncIterableIterator<T> = {
      next: (): Promise<IteratorResult<T, undefined>> => {
        if (stopped) return Promise.resolve(DONE);
        if (this.#items.length > 0) {
          return Promise.resolve({ value: this.#items.shift()!, done: false });
        }
        if (this.#ended) return Promise.resolve(DONE);
        return new Promise((resolve) => {
          const waiter: Waiter<T> = (result) => {
            own.delete(waiter);
            resolve(result);
          };
          own.add(waiter);
          this.#waiters.push(waiter);
        });
      },
      return: (): Promise<IteratorResult<T, undefined>> => {
        // A consumer that leaves must not swallow an item that arrives for its pending next().
        stopped = true;
        for (const w of own) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w(DONE);
        }
        return Promise.resolve(DONE);
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }
}
