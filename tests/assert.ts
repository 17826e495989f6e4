// Assertions shared by the suite, built on node:assert (present on Deno and Bun alike).

import nodeAssert from "node:assert/strict";

/** Throws unless `cond` is truthy. */
export function assert(cond: unknown, message?: string): asserts cond {
  if (message === undefined) nodeAssert.ok(cond);
  else nodeAssert.ok(cond, message);
}

/** Deep, strict equality (handles Uint8Array, Map, Set, bigint). */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  if (message === undefined) nodeAssert.deepStrictEqual(actual, expected);
  else nodeAssert.deepStrictEqual(actual, expected, message);
}

/** Deep, strict inequality. */
export function assertNotEquals<T>(actual: T, expected: T, message?: string): void {
  if (message === undefined) nodeAssert.notDeepStrictEqual(actual, expected);
  else nodeAssert.notDeepStrictEqual(actual, expected, message);
}

// deno-lint-ignore no-explicit-any
type ErrorClass = abstract new (...args: any[]) => Error;

function check(err: unknown, cls: ErrorClass | undefined, includes: string | undefined): Error {
  if (!(err instanceof Error)) {
    throw new nodeAssert.AssertionError({ message: `Expected an Error, got ${String(err)}` });
  }
  if (cls !== undefined && !(err instanceof cls)) {
    const got = err as Error;
    throw new nodeAssert.AssertionError({
      message: `Expected ${cls.name}, got ${got.constructor.name}: ${got.message}`,
    });
  }
  if (includes !== undefined && !err.message.includes(includes)) {
    throw new nodeAssert.AssertionError({
      message: `Expected message to include "${includes}", got "${err.message}"`,
    });
  }
  return err;
}

/** Asserts that `fn` throws an instance of `cls` whose message includes `includes`; returns it. */
export function assertThrows(fn: () => unknown, cls?: ErrorClass, includes?: string): Error {
  try {
    fn();
  } catch (err) {
    return check(err, cls, includes);
  }
  throw new nodeAssert.AssertionError({ message: "Expected function to throw" });
}

/** Asserts that `fn` rejects with an instance of `cls` whose message includes `includes`; returns it. */
export async function assertRejects(
  fn: () => Promise<unknown>,
  cls?: ErrorClass,
  includes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    return check(err, cls, includes);
  }
  throw new nodeAssert.AssertionError({ message: "Expected promise to reject" });
}
