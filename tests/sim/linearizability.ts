// Linearizability checker for the simulator's client histories: WGL search with memoisation.

/**
 * One client operation in a history, stamped with the virtual times at which
 * the client issued it and saw its answer.
 */
export interface Operation<I, O> {
  /** The client that issued the operation; only used in explanations. */
  clientId: number;
  /** What the client asked for. */
  input: I;
  /** Virtual time the client issued the operation. */
  call: number;
  /** What the client was told; absent when the outcome is unknown. */
  output?: O;
  /**
   * Virtual time the answer arrived. Absent when it never did (timed out,
   * client crashed): the operation may have taken effect at any time after
   * `call`, or not at all.
   */
  return?: number;
}

/**
 * A sequential specification of the object the history was run against.
 * The checker searches for an order of the operations that this model accepts.
 */
export interface Model<S, I, O> {
  /** The state before any operation. */
  init(): S;
  /**
   * Applies one operation: `[legal?, next state]`. `output` is undefined for
   * operations with an unknown outcome — then accept any outcome the input
   * could have. Must not mutate `state`: the search keeps old states to
   * backtrack to.
   */
  step(state: S, input: I, output: O | undefined): [boolean, S];
  /**
   * Splits a history into independent sub-histories (e.g. per key) that are
   * checked separately. Linearizability is compositional (Herlihy & Wing),
   * so this is exact, and it shrinks the search exponentially.
   */
  partition?(history: Operation<I, O>[]): Operation<I, O>[][];
  /** State equality, for memoisation. */
  equal(a: S, b: S): boolean;
  /** A string that is equal for equal states, for memoisation. */
  hash(s: S): string;
  /** Human-readable text for an operation, used in explanations. */
  describeOperation?(input: I, output: O | undefined): string;
  /** Human-readable name of a sub-history returned by `partition` (e.g. its key). */
  describePartition?(history: Operation<I, O>[]): string;
  /** Human-readable text for a state, used in explanations (defaults to `hash`). */
  describeState?(state: S): string;
  /**
   * True when the operation leaves every state unchanged. Pending ones then
   * constrain nothing and are dropped; completed ones are placed as soon as
   * they are legal, without branching. Must be exact: `true` for an
   * operation that can change the state may report false violations.
   */
  readOnly?(input: I): boolean;
}

/**
 * The verdict on a history. `unknown` means the search ran out of budget;
 * it is never reported as `ok`.
 */
export type CheckResult =
  | { kind: "ok" }
  | { kind: "illegal"; partition: number; explanation: string }
  | { kind: "unknown"; reason: string };

/** Options for {@link checkLinearizability}. */
export interface CheckOptions {
  /**
   * Search steps allowed per partition before giving up with `unknown`
   * (default {@link DEFAULT_MAX_STEPS}). A step is one look at one event of
   * the history; memory grows with the steps taken.
   */
  maxSteps?: number;
}

/** Default search budget per partition. */
export const DEFAULT_MAX_STEPS = 5_000_000;

/**
 * Decides whether `history` is linearizable with respect to `model`.
 *
 * Operation A happens before B only when `A.return < B.call`; equal times
 * count as concurrent, so a tie can never produce a false violation.
 * Operations without `return` are optional: the history is linearizable if
 * all completed operations plus some subset of the pending ones linearize.
 *
 * Partitions are checked in order; a violation in any partition wins over a
 * budget overrun in another.
 *
 * @param model the sequential specification
 * @param history operations in any order
 * @param opts search budget
 * @returns `ok`, `illegal` with an explanation, or `unknown` when the budget ran out
 * @throws {RangeError} when a time is not a finite number, an operation returns before its call, or `maxSteps` is not a positive integer
 * @example
 * ```ts
 * import { checkLinearizability, kvModel } from "./linearizability.ts";
 * const result = checkLinearizability(kvModel, [
 *   { clientId: 1, input: { op: "put", key: "x", value: "a" }, call: 0, return: 1, output: null },
 *   { clientId: 2, input: { op: "get", key: "x" }, call: 2, return: 3, output: "a" },
 * ]);
 * if (result.kind !== "ok") throw new Error("expected a linearizable history");
 * ```
 */
export function checkLinearizability<S, I, O>(
  model: Model<S, I, O>,
  history: Operation<I, O>[],
  opts: CheckOptions = {},
): CheckResult {
  const maxSteps = opts.maxSteps ?? DEFAULT_MAX_STEPS;
  if (!Number.isInteger(maxSteps) || maxSteps <= 0) {
    throw new RangeError(`maxSteps must be a positive integer, got ${maxSteps}`);
  }
  history.forEach(validate);
  const relevant = history.filter((op) =>
    op.return !== undefined || model.readOnly?.(op.input) !== true
  );
  const partitions = model.partition === undefined ? [relevant] : model.partition(relevant);
  let unknown: string | undefined;
  for (let i = 0; i < partitions.length; i++) {
    const ops = partitions[i] ?? [];
    const outcome = decide(model, ops, maxSteps);
    if (outcome.kind === "illegal") {
      return { kind: "illegal", partition: i, explanation: explain(model, ops, i, outcome.prefix) };
    }
    if (outcome.kind === "unknown" && unknown === undefined) {
      unknown = `${partitionLabel(model, ops, i)}: gave up after ${maxSteps} search steps ` +
        `(${ops.length} operations) without deciding`;
    }
  }
  return unknown === undefined ? { kind: "ok" } : { kind: "unknown", reason: unknown };
}

function validate<I, O>(op: Operation<I, O>, index: number): void {
  if (typeof op.call !== "number" || !Number.isFinite(op.call)) {
    throw new RangeError(`Operation ${index} has a call time that is not finite: ${op.call}`);
  }
  if (op.return === undefined) return;
  if (typeof op.return !== "number" || !Number.isFinite(op.return)) {
    throw new RangeError(`Operation ${index} has a return time that is not finite: ${op.return}`);
  }
  if (op.return < op.call) {
    throw new RangeError(
      `Operation ${index} returns at ${op.return}, before its call at ${op.call}`,
    );
  }
}

type Decision = { kind: "ok" } | { kind: "illegal"; prefix: number[] } | { kind: "unknown" };

/** `capped`: the failure may be due to the limit on pending operations rather than the history. */
type SearchOutcome = { kind: "ok" } | { kind: "illegal"; prefix: number[]; capped: boolean };

/** Search steps one search runs before the next gets a turn. */
const SLICE = 256;

/** Steps a search may still take before it must yield. */
interface Allowance {
  left: number;
}

/**
 * Decides one partition by running three searches in turns, `SLICE` steps
 * at a time, until one finishes or `maxSteps` are spent between them. All
 * are complete, so whichever finishes first is right; they differ only in
 * how they treat pending operations, and each is fast where another can be
 * exponential:
 *  - eager (WGL's call order): a pending operation that took effect is
 *    placed where it was called, which is usually close to where it is
 *    observed. But one that never took effect is then placed first at every
 *    later window, and for a non-idempotent operation (append) the search
 *    tries every subset of such operations before the one without them.
 *  - lazy: stale pending operations are tried last. Fast when pending
 *    operations that took effect were observed soon after their call.
 *  - bounded: lazy, with at most 0, 1, 2, 4, … pending operations
 *    linearized, a new search for each bound, until one succeeds or fails
 *    without the bound getting in its way. Fast when few pending operations
 *    took effect, as when one client keeps timing out against a deposed
 *    leader while others make progress.
 */
function decide<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  maxSteps: number,
): Decision {
  const runs = [
    (allowance: Allowance) => search(model, ops, false, Infinity, allowance),
    (allowance: Allowance) => search(model, ops, true, Infinity, allowance),
    (allowance: Allowance) => deepening(model, ops, allowance),
  ].map((start) => {
    const allowance: Allowance = { left: 0 };
    return { allowance, search: start(allowance) };
  });
  let spent = 0;
  for (;;) {
    for (const run of runs) {
      const slice = Math.min(SLICE, maxSteps - spent);
      if (slice <= 0) return { kind: "unknown" };
      run.allowance.left = slice;
      const turn = run.search.next();
      spent += slice - run.allowance.left;
      if (turn.done === true) {
        const outcome = turn.value;
        return outcome.kind === "ok" ? outcome : { kind: "illegal", prefix: outcome.prefix };
      }
    }
  }
}

/** The lazy search under a doubling bound on pending operations linearized. */
function* deepening<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  allowance: Allowance,
): Generator<void, SearchOutcome, void> {
  for (let limit = 0;; limit = Math.max(1, 2 * limit)) {
    const outcome = yield* search(model, ops, true, limit, allowance);
    if (outcome.kind === "ok" || !outcome.capped) return outcome;
  }
}

interface CacheEntry<S> {
  /** Every operation linearized, completed and pending alike. */
  bits: Uint32Array;
  state: S;
}

const NIL = -1;

/**
 * WGL over one partition, iterative, with an explicit undo stack. Yields
 * whenever `allowance` runs out; `decide` refills it.
 *
 * The history becomes a doubly linked list of events in time order: a call
 * event for every operation and a return event for every completed one. The
 * call events before the first return event are the window: the operations
 * that may be linearized next, since the one returning first must have taken
 * effect by then. Pending operations have no return event, so they never
 * close a window and are never required. Linearizing an operation unlinks its
 * events (undone on backtrack, dancing-links style) and starts a new walk;
 * exhausting a window undoes the last choice.
 *
 * The memo holds every configuration pushed: linearized set plus state. A
 * configuration is pruned when one with the same completed operations and
 * state, and a subset of its pending operations, was pushed before — that
 * one can do everything this one can, since pending operations carry no
 * deadline. (Plain equality, as in Porcupine, would explore every subset of
 * the pending operations separately.)
 *
 * Each window is walked in up to three phases, so that the order in which
 * candidates are tried (never which are tried) favours likely guesses:
 *  - READ: completed read-only operations (per `model.readOnly`). Placing one
 *    the moment it is legal loses nothing — it only moves earlier inside its
 *    own window and leaves the same state — so it is placed without
 *    branching, and a dead end after it is a dead end before it.
 *  - WRITE: other completed operations and, unless `deferStale`, every
 *    pending one, in call order: the WGL choice.
 *  - STALE: with `deferStale`, pending operations called before every
 *    completed one still to place.
 *
 * At most `pendingLimit` pending operations are linearized at a time.
 */
function* search<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  deferStale: boolean,
  pendingLimit: number,
  allowance: Allowance,
): Generator<void, SearchOutcome, void> {
  const n = ops.length;
  let remaining = 0;
  for (const op of ops) if (op.return !== undefined) remaining++;
  const total = remaining;
  if (remaining === 0) return { kind: "ok" };
  const opAt = (k: number): Operation<I, O> => ops[k] as Operation<I, O>;

  // Event e = 2 * k + (1 if return). Calls sort before returns at equal
  // times, which is what makes a tie concurrent.
  const eventTime = (e: number): number => {
    const op = opAt(e >> 1);
    return (e & 1) === 0 ? op.call : op.return as number;
  };
  const events: number[] = [];
  ops.forEach((op, k) => {
    events.push(2 * k);
    if (op.return !== undefined) events.push(2 * k + 1);
  });
  events.sort((a, b) => eventTime(a) - eventTime(b) || (a & 1) - (b & 1) || (a >> 1) - (b >> 1));
  // Node 0 is the head; the event at sorted position p is node p + 1.
  const next = new Int32Array(events.length + 1);
  const prev = new Int32Array(events.length + 1);
  for (let p = 0; p <= events.length; p++) {
    next[p] = p === events.length ? NIL : p + 1;
    prev[p] = p - 1;
  }
  const eventOf = new Int32Array(events.length + 1);
  const callNode = new Int32Array(n);
  const returnNode = new Int32Array(n).fill(NIL);
  events.forEach((e, p) => {
    eventOf[p + 1] = e;
    if ((e & 1) === 0) callNode[e >> 1] = p + 1;
    else returnNode[e >> 1] = p + 1;
  });
  const unlink = (node: number): void => {
    const before = prev[node] as number;
    const after = next[node] as number;
    next[before] = after;
    if (after !== NIL) prev[after] = before;
  };
  // Exact as long as relinks come in the reverse order of unlinks.
  const relink = (node: number): void => {
    const before = prev[node] as number;
    const after = next[node] as number;
    next[before] = node;
    if (after !== NIL) prev[after] = node;
  };

  // Zobrist hashing keeps the memo key of the completed set O(1) per step;
  // pending operations stay out of the key so that dominated configurations
  // share a bucket with the ones that dominate them.
  const zobrist1 = new Int32Array(n);
  const zobrist2 = new Int32Array(n);
  const words = (n + 31) >>> 5;
  const completedMask = new Uint32Array(words);
  ops.forEach((op, k) => {
    if (op.return === undefined) return;
    zobrist1[k] = mix32(2 * k + 1);
    zobrist2[k] = mix32(0x9e3779b9 ^ (2 * k + 2));
    completedMask[k >>> 5] = (completedMask[k >>> 5] as number) | (1 << (k & 31));
  });
  const bits = new Uint32Array(words);
  let h1 = 0;
  let h2 = 0;
  const flip = (k: number): void => {
    bits[k >>> 5] = (bits[k >>> 5] as number) ^ (1 << (k & 31));
    h1 ^= zobrist1[k] as number;
    h2 ^= zobrist2[k] as number;
  };
  const cache = new Map<string, CacheEntry<S>[]>();
  const dominates = (entry: CacheEntry<S>): boolean => {
    for (let w = 0; w < words; w++) {
      const old = entry.bits[w] as number;
      const now = bits[w] as number;
      if ((old & ~now) !== 0 || (now & ~old & (completedMask[w] as number)) !== 0) return false;
    }
    return true;
  };
  /** Records the configuration reached by linearizing `k` into `after`, unless one dominating it was. */
  const visit = (k: number, after: S): boolean => {
    flip(k);
    const key = `${h1}:${h2}:${model.hash(after)}`;
    const bucket = cache.get(key);
    let covered = false;
    for (const entry of bucket ?? []) {
      if (dominates(entry) && model.equal(entry.state, after)) {
        covered = true;
        break;
      }
    }
    if (!covered) {
      const entry = { bits: bits.slice(), state: after };
      if (bucket === undefined) cache.set(key, [entry]);
      else bucket.push(entry);
    }
    flip(k);
    return !covered;
  };

  const READ = 0;
  const WRITE = 1;
  const STALE = 2;
  const PENDING = 3;
  const kindOf = new Uint8Array(n);
  let anyRead = false;
  let anyPending = false;
  ops.forEach((op, k) => {
    if (op.return === undefined) {
      kindOf[k] = PENDING;
      anyPending = true;
    } else if (model.readOnly?.(op.input) === true) {
      kindOf[k] = READ;
      anyRead = true;
    } else {
      kindOf[k] = WRITE;
    }
  });
  const firstPhase = anyRead ? READ : WRITE;
  const lastPhase = deferStale && anyPending ? STALE : WRITE;

  const stackOps: number[] = [];
  const stackStates: S[] = [];
  const stackPhases: number[] = [];
  let longest: number[] = [];
  let longestPlaced = -1;
  let state = model.init();
  let node = next[0] as number;
  let phase = firstPhase;
  // Whether the walk has passed the call of a completed operation: pending
  // operations before that point are stale.
  let passedCompleted = false;
  let pendingPlaced = 0;
  let capped = false;

  const place = (k: number, after: S): void => {
    stackOps.push(k);
    stackStates.push(state);
    stackPhases.push(phase);
    flip(k);
    state = after;
    unlink(callNode[k] as number);
    if (returnNode[k] !== NIL) {
      unlink(returnNode[k] as number);
      remaining--;
    } else {
      pendingPlaced++;
    }
    phase = firstPhase;
    passedCompleted = false;
    node = next[0] as number;
  };

  /** Undoes choices until one with untried alternatives; false when none is left. */
  const backtrack = (): boolean => {
    const placed = total - remaining;
    if (placed > longestPlaced) {
      longestPlaced = placed;
      longest = stackOps.slice();
      // Trailing pending operations explain nothing; they reappear as candidates.
      while (
        longest.length > 0 && opAt(longest[longest.length - 1] as number).return === undefined
      ) {
        longest.pop();
      }
    }
    for (;;) {
      const k = stackOps.pop();
      const previous = stackStates.pop();
      const placedIn = stackPhases.pop();
      if (k === undefined || previous === undefined || placedIn === undefined) return false;
      state = previous;
      flip(k);
      if (returnNode[k] !== NIL) {
        relink(returnNode[k] as number);
        remaining++;
      } else {
        pendingPlaced--;
      }
      relink(callNode[k] as number);
      phase = placedIn;
      // A read placed without alternatives: its parent is a dead end too.
      if (phase === READ) continue;
      // Only a stale pending operation is met before any completed call.
      passedCompleted = phase === WRITE;
      node = next[callNode[k] as number] as number;
      return true;
    }
  };

  while (remaining > 0) {
    if (allowance.left <= 0) yield;
    allowance.left--;
    // While a completed operation is still linked its return event ends the
    // walk, so falling off the list would be a bug in the search itself.
    if (node === NIL) throw new Error("Cannot continue search: walked past the last event");
    const e = eventOf[node] as number;
    if ((e & 1) === 1) {
      if (phase < lastPhase) {
        phase++;
        passedCompleted = false;
        node = next[0] as number;
      } else if (!backtrack()) {
        // Nothing fits before this operation's deadline, whatever came before.
        return { kind: "illegal", prefix: longest, capped };
      }
      continue;
    }
    const k = e >> 1;
    const kind = kindOf[k] as number;
    const stale = deferStale && !passedCompleted;
    if (kind !== PENDING) passedCompleted = true;
    const due = kind === PENDING ? phase === (stale ? STALE : WRITE) : kind === phase;
    if (!due || (kind === PENDING && pendingPlaced >= pendingLimit)) {
      if (due) capped = true;
      node = next[node] as number;
      continue;
    }
    const op = opAt(k);
    const [legal, after] = model.step(state, op.input, op.output);
    if (legal) {
      if (visit(k, after)) {
        place(k, after);
        continue;
      }
      // A forced move into an explored configuration: this one is dead too.
      // (It cannot be an ancestor: those have fewer completed operations.)
      if (phase === READ) {
        if (!backtrack()) return { kind: "illegal", prefix: longest, capped };
        continue;
      }
    }
    node = next[node] as number;
  }
  return { kind: "ok" };
}

/** MurmurHash3's finaliser: spreads consecutive integers over 32 bits. */
function mix32(x: number): number {
  let z = x | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return z ^ (z >>> 16);
}

const MAX_LISTED = 20;

function partitionLabel<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  index: number,
): string {
  const name = model.describePartition?.(ops);
  return name === undefined ? `partition ${index}` : `partition ${index} (${name})`;
}

function describeOp<S, I, O>(model: Model<S, I, O>, op: Operation<I, O>): string {
  const text = model.describeOperation?.(op.input, op.output) ??
    `${JSON.stringify(op.input)} -> ${op.output === undefined ? "?" : JSON.stringify(op.output)}`;
  const when = op.return === undefined
    ? `call ${op.call}, never returned`
    : `call ${op.call}, return ${op.return}`;
  return `client ${op.clientId}: ${text} (${when})`;
}

/**
 * Turns the deepest point the search reached into prose: what did linearize,
 * the state it left, and the operation that then had to take effect but
 * could not.
 */
function explain<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  index: number,
  prefix: number[],
): string {
  const lines: string[] = [];
  const clients = new Set(ops.map((op) => op.clientId)).size;
  lines.push(
    `${partitionLabel(model, ops, index)} is not linearizable ` +
      `(${ops.length} operations from ${clients} clients).`,
  );
  let state = model.init();
  for (const k of prefix) {
    const op = ops[k] as Operation<I, O>;
    state = model.step(state, op.input, op.output)[1];
  }
  lines.push(`Longest linearizable prefix found (${prefix.length} of ${ops.length} operations):`);
  if (prefix.length === 0) lines.push("  (none)");
  const skipped = Math.max(0, prefix.length - MAX_LISTED);
  if (skipped > 0) lines.push(`  ... ${skipped} earlier operations`);
  for (let i = skipped; i < prefix.length; i++) {
    lines.push(`  ${i + 1}. ${describeOp(model, ops[prefix[i] as number] as Operation<I, O>)}`);
  }
  lines.push(`State after it: ${model.describeState?.(state) ?? model.hash(state)}`);

  const placed = new Set(prefix);
  let stuck: Operation<I, O> | undefined;
  for (let k = 0; k < ops.length; k++) {
    const op = ops[k] as Operation<I, O>;
    if (placed.has(k) || op.return === undefined) continue;
    if (stuck === undefined || op.return < (stuck.return as number)) stuck = op;
  }
  // The search only fails while a completed operation is left unplaced.
  if (stuck === undefined) return lines.join("\n");
  const deadline = stuck.return as number;
  lines.push(
    `Could not place: ${describeOp(model, stuck)} — ` +
      `it must take effect by time ${deadline}, and no order of the operations below allows it:`,
  );
  const candidates = ops.filter((op, k) => !placed.has(k) && op.call <= deadline);
  for (const op of candidates.slice(0, MAX_LISTED)) {
    const legal = model.step(state, op.input, op.output)[0];
    const why = legal ? "fits here, but no continuation after it works" : "not legal in this state";
    lines.push(`  - ${describeOp(model, op)}: ${why}`);
  }
  if (candidates.length > MAX_LISTED) {
    lines.push(`  ... ${candidates.length - MAX_LISTED} more`);
  }
  return lines.join("\n");
}

/** Inputs of the key-value model. */
export type KvInput =
  | { op: "put"; key: string; value: string }
  | { op: "get"; key: string }
  | { op: "append"; key: string; value: string };

/** Outputs of the key-value model: the value for `get` (null when absent), null for `put` and `append`. */
export type KvOutput = string | null;

/**
 * The value of the single key a partition covers (null when absent). The
 * model relies on its own `partition`, which the checker always applies.
 */
export type KvState = string | null;

/** A key-value store with `put`, `get` and `append`, checked key by key. */
export const kvModel: Model<KvState, KvInput, KvOutput> = {
  init: () => null,
  step(state, input, output) {
    switch (input.op) {
      case "get":
        return [output === undefined || output === state, state];
      case "put":
        return [output === undefined || output === null, input.value];
      case "append":
        return [output === undefined || output === null, (state ?? "") + input.value];
    }
  },
  partition(history) {
    const byKey = new Map<string, Operation<KvInput, KvOutput>[]>();
    for (const op of history) {
      const group = byKey.get(op.input.key);
      if (group === undefined) byKey.set(op.input.key, [op]);
      else group.push(op);
    }
    return [...byKey.values()];
  },
  equal: (a, b) => a === b,
  // The prefix keeps null apart from every string, "" included.
  hash: (s) => (s === null ? "-" : `=${s}`),
  describeOperation(input, output) {
    const key = JSON.stringify(input.key);
    switch (input.op) {
      case "get":
        return `get(${key}) -> ${output === undefined ? "?" : JSON.stringify(output)}`;
      case "put":
      case "append": {
        const call = `${input.op}(${key}, ${JSON.stringify(input.value)})`;
        return output === undefined || output === null
          ? call
          : `${call} -> ${JSON.stringify(output)}`;
      }
    }
  },
  describePartition(history) {
    const first = history[0];
    return first === undefined ? "no operations" : `key ${JSON.stringify(first.input.key)}`;
  },
  describeState: (s) => (s === null ? "absent" : JSON.stringify(s)),
  readOnly: (input) => input.op === "get",
};
