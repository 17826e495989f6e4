// CoreRunner: owns one RaftCore with real (possibly async) storage — persists, sends, applies, advances, settles waiters.

import { RaftCore } from "../raft/core.ts";
import type {
  EntryLookup,
  NodeId,
  RaftConfig,
  RaftEvent,
  RaftMessage,
  Ready,
  RejectReason,
} from "../raft/types.ts";
import type { Cursor, Index, IndexRange, Term } from "../primitives/cursor.ts";
import type { AnyStateMachine, ApplyContext, CommandOf } from "../machine/state_machine.ts";
import { type LogEntry, type Storage, SystemEntry } from "../../storage/types.ts";
import type { StoreOwner } from "../../storage/errors.ts";
import { CommandLostError, GroupTerminatedError } from "./errors.ts";

/** Most entries read from storage at once when applying entries that are not cached. */
const APPLY_WINDOW = 1000;

/** What a runner needs. */
export interface RunnerOptions<M extends AnyStateMachine> {
  /** Core settings; `id` is this node's hex PeerId. */
  readonly raft: RaftConfig;
  readonly machine: M;
  readonly storage: Storage<CommandOf<M>>;
  /** Who the storage belongs to (hex GroupId and PeerId), checked with `Storage.claim` before loading. */
  readonly owner?: StoreOwner;
  /** Sends a message to a peer; delivery is best effort (Raft tolerates loss). */
  send(to: NodeId, message: RaftMessage): void;
  /** Core events, after the Ready they came with was persisted. */
  onEvents?(events: readonly RaftEvent[]): void;
  /** Called after every processed Ready (status may have changed). */
  onProgress?(): void;
  /** Storage failed: the runner has stopped; the group must close. */
  onFatal?(error: unknown): void;
}

/** Why a read could not be served here (no leader known, or leadership lost meanwhile). */
export class ReadDroppedError extends Error {
  override name = "ReadDroppedError";
}

interface CommandWaiter {
  readonly range: IndexRange;
  readonly term: Term;
  resolve(): void;
  reject(err: Error): void;
}

interface ReadWaiter {
  index: Index | undefined;
  resolve(index: Index): void;
  reject(err: Error): void;
}

/**
 * Runs a {@link RaftCore} against real storage and a state machine.
 *
 * The core is synchronous but storage may not be, and the core accepts no
 * input between `ready()` and `advance()`. So inputs that arrive while a
 * Ready is being persisted are queued and fed after `advance()`, in order;
 * every Ready is handled strictly as persist → send → apply → advance
 * (DESIGN.md §4), so nothing is acknowledged before it is durable.
 *
 * A state machine that throws while applying a committed command is a bug in
 * the machine; the runner records the error (`applyErrors`) and goes on, since
 * every member applies the same command and fails the same way.
 */
export class CoreRunner<M extends AnyStateMachine> {
  readonly core: RaftCore;
  readonly #opts: RunnerOptions<M>;
  #pending: (() => void)[] = [];
  #busy = false;
  #running: Promise<void> | undefined;
  #closed = false;
  #commandWaiters: CommandWaiter[] = [];
  #readWaiters = new Map<string, ReadWaiter>();
  #readSeq = 0;
  /** The latest errors thrown by the state machine while applying (at most 100), for diagnostics. */
  readonly applyErrors: { index: Index; error: unknown }[] = [];
  #lastApplied: Cursor = { term: 0, index: 0 };

  private constructor(core: RaftCore, opts: RunnerOptions<M>) {
    this.core = core;
    this.#opts = opts;
  }

  /** Loads hard state and log from storage and starts a core on them. */
  static async open<M extends AnyStateMachine>(opts: RunnerOptions<M>): Promise<CoreRunner<M>> {
    const s = opts.storage;
    if (opts.owner !== undefined) await s.claim?.(opts.owner);
    const hardState = await s.loadHardState();
    const available = await s.available();
    const prefixIndex = available.start - 1;
    const prefixTerm = (await s.termAt(prefixIndex)) ?? 0;
    const entries = available.end >= available.start
      ? await s.getRange(available.start, available.end)
      : [];
    const core = new RaftCore(opts.raft, {
      ...(hardState !== undefined ? { hardState } : {}),
      prefix: { term: prefixTerm, index: prefixIndex },
      entries,
    });
    return new CoreRunner(core, opts);
  }

  /** Position of the last applied entry. */
  get applied(): Cursor {
    return this.#lastApplied;
  }

  /** Runs `input` against the core now, or after the Ready in progress; then processes. */
  #input(input: () => void): void {
    if (this.#closed) return;
    if (this.#busy) this.#pending.push(input);
    else {
      input();
      void this.#process();
    }
  }

  /** Advances logical time by one tick. */
  tick(): void {
    this.#input(() => this.core.tick());
  }

  /** Feeds a message from a peer. */
  step(message: RaftMessage): void {
    this.#input(() => this.core.step(message));
  }

  /** Runs any core call in order with the other inputs, e.g. membership changes. */
  call<T>(fn: (core: RaftCore) => T): Promise<T> {
    if (this.#closed) return Promise.reject(new GroupTerminatedError());
    return new Promise<T>((resolve, reject) => {
      this.#input(() => {
        try {
          resolve(fn(this.core));
        } catch (err) {
          reject(err);
        }
      });
    });
  }

  /**
   * Proposes commands at this node (the leader). Resolves with the assigned
   * range and term, or the core's refusal (`notLeader`, …).
   */
  propose(
    commands: readonly CommandOf<M>[],
  ): Promise<{ ok: true; range: IndexRange; term: Term } | { ok: false; reason: RejectReason }> {
    return this.call((core) => {
      const r = core.propose(commands);
      return r.ok ? { ok: true as const, range: r.value, term: core.term } : r;
    });
  }

  /**
   * Resolves when every index of `range` is applied here with entries of
   * `term`; rejects with {@link CommandLostError} if any of them turns out to
   * hold an entry of another term (the proposal was lost to a leader change).
   */
  waitApplied(range: IndexRange, term: Term, signal?: AbortSignal): Promise<void> {
    if (this.#closed) return Promise.reject(new GroupTerminatedError());
    signal?.throwIfAborted();
    if (this.#lastApplied.index >= range.end) {
      // Already applied: the log here is committed up to range.end, so the terms decide.
      for (let i = range.start; i <= range.end; i++) {
        if (this.core.log.termAt(i) !== term) return Promise.reject(new CommandLostError(i, term));
      }
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.#commandWaiters = this.#commandWaiters.filter((w) => w !== waiter);
        reject(signal!.reason);
      };
      const waiter: CommandWaiter = {
        range,
        term,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject: (err) => {
          signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#commandWaiters.push(waiter);
    });
  }

  /**
   * A linearizable read point: resolves with an index once leadership was
   * confirmed (ReadIndex) and this node has applied up to it, so a query of
   * the local state machine is linearizable. Rejects with
   * {@link ReadDroppedError} when no leader could confirm it.
   */
  readIndex(signal?: AbortSignal): Promise<Index> {
    if (this.#closed) return Promise.reject(new GroupTerminatedError());
    signal?.throwIfAborted();
    const id = `r${++this.#readSeq}`;
    return new Promise<Index>((resolve, reject) => {
      const onAbort = () => {
        this.#readWaiters.delete(id);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#readWaiters.set(id, {
        index: undefined,
        resolve: (i) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(i);
        },
        reject: (err) => {
          signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      });
      this.#input(() => this.core.readIndex(id));
    });
  }

  /** Stops processing and rejects every waiter with `reason`. Idempotent. */
  close(reason: Error = new GroupTerminatedError()): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = [];
    for (const w of this.#commandWaiters) w.reject(reason);
    this.#commandWaiters = [];
    for (const w of this.#readWaiters.values()) w.reject(reason);
    this.#readWaiters.clear();
  }

  /**
   * Resolves once the Ready in progress, if any, has finished its storage
   * calls. After {@link close}, awaiting it means the runner no longer touches
   * the store, so the store may be closed.
   */
  settled(): Promise<void> {
    return this.#running ?? Promise.resolve();
  }

  async #process(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    let done!: () => void;
    this.#running = new Promise<void>((resolve) => done = resolve);
    try {
      for (;;) {
        while (!this.#closed && this.core.hasReady()) {
          const rd = this.core.ready();
          const fetched = await this.#handle(rd);
          if (this.#closed) return;
          this.core.advance(rd);
          for (const entries of fetched) this.core.provideEntries(entries);
          this.#settleReads(rd);
          if (rd.events.length > 0) this.#opts.onEvents?.(rd.events);
          this.#opts.onProgress?.();
        }
        // inputs that arrived during the last Ready, in order
        const next = this.#pending;
        if (next.length === 0 || this.#closed) return;
        this.#pending = [];
        for (const input of next) input();
      }
    } catch (err) {
      this.close(err instanceof Error ? err : new Error(String(err)));
      this.#opts.onFatal?.(err);
    } finally {
      this.#busy = false;
      this.#running = undefined;
      done();
    }
  }

  /** Persist, send, apply; returns entries fetched for the core. */
  async #handle(rd: Ready & { resetLog?: true }): Promise<LogEntry<CommandOf<M>>[][]> {
    const s = this.#opts.storage;
    if (rd.resetLog) {
      await s.resetTo({ term: 0, index: 0 });
      this.#lastApplied = { term: 0, index: 0 };
      await this.#opts.machine.reset?.();
    }
    // A leader's appends and heartbeats go out before its own write (Raft thesis §10.2.1): the
    // followers persist in parallel with it, and the core counts the leader's own copy only
    // once `advance` says it is durable. Everything else — responses, votes, anything in a
    // Ready that changes the hard state or truncates — waits for the writes it depends on.
    let early = false;
    if (
      rd.hardState === undefined && rd.truncateFrom === undefined && !rd.resetLog &&
      rd.entries.length > 0 && this.core.role === "leader"
    ) {
      early = true;
      for (const m of rd.messages) {
        if (m.type === "append" || m.type === "heartbeat") this.#opts.send(m.to, m);
      }
    }
    if (rd.hardState !== undefined) await s.saveHardState(rd.hardState);
    if (rd.truncateFrom !== undefined) await s.truncate(rd.truncateFrom);
    if (rd.entries.length > 0) await s.append(rd.entries as LogEntry<CommandOf<M>>[]);
    for (const m of rd.messages) {
      if (!early || (m.type !== "append" && m.type !== "heartbeat")) this.#opts.send(m.to, m);
    }
    if (rd.apply !== undefined) await this.#apply(rd.apply.range, rd.apply.entries);
    const fetched: LogEntry<CommandOf<M>>[][] = [];
    for (const r of rd.fetch) fetched.push(await s.getRange(r.start, r.end));
    return fetched;
  }

  async #apply(range: IndexRange, cached: EntryLookup): Promise<void> {
    const machine = this.#opts.machine;
    let batch: CommandOf<M>[] = [];
    let positions: Cursor[] = [];
    const context = (at: Cursor): ApplyContext => ({
      committed: () => ({
        term: this.core.log.termAt(this.core.committed) ?? 0,
        index: this.core.committed,
      }),
      logPosition: () => at,
      currentTerm: () => this.core.term,
    });
    const failed = (index: Index, error: unknown) => {
      // bounded: a machine that throws on every command must not grow memory
      if (this.applyErrors.length >= 100) this.applyErrors.shift();
      this.applyErrors.push({ index, error });
    };
    const flush = () => {
      if (batch.length === 0) return;
      if (machine.applyBatch !== undefined) {
        const at = positions[positions.length - 1]!;
        try {
          machine.applyBatch(batch, context(at));
        } catch (error) {
          failed(at.index, error);
        }
      } else {
        // One command at a time, each with its own position: a command that throws is
        // skipped alone, the same way on every member, wherever batches happen to end.
        for (let k = 0; k < batch.length; k++) {
          try {
            machine.apply(batch[k]!, context(positions[k]!));
          } catch (error) {
            failed(positions[k]!.index, error);
          }
        }
      }
      batch = [];
      positions = [];
    };
    // Entries no longer cached (a restart replays the whole log) are read in windows.
    let window: LogEntry<CommandOf<M>>[] = [];
    let windowStart = 0;
    for (let i = range.start; i <= range.end; i++) {
      let e: LogEntry<unknown> | undefined = cached.get(i);
      if (e === undefined) {
        if (i < windowStart || i >= windowStart + window.length) {
          windowStart = i;
          window = await this.#opts.storage.getRange(i, Math.min(range.end, i + APPLY_WINDOW - 1));
        }
        e = window[i - windowStart];
        if (e !== undefined && e.index !== i) e = undefined;
      }
      if (e === undefined) throw new Error(`Cannot apply entry ${i}: missing from storage`);
      if (!SystemEntry.is(e.command)) {
        batch.push(e.command as CommandOf<M>);
        positions.push({ term: e.term, index: e.index });
      }
      this.#lastApplied = { term: e.term, index: e.index };
      this.#checkCommandWaiters(e);
    }
    flush();
    // waiters resolve only after the machine holds their effects
    const applied = this.#lastApplied.index;
    const done = this.#commandWaiters.filter((w) => w.range.end <= applied);
    this.#commandWaiters = this.#commandWaiters.filter((w) => w.range.end > applied);
    for (const w of done) w.resolve();
  }

  #checkCommandWaiters(e: LogEntry<unknown>): void {
    if (this.#commandWaiters.length === 0) return;
    const lost = this.#commandWaiters.filter((w) =>
      e.index >= w.range.start && e.index <= w.range.end && e.term !== w.term
    );
    if (lost.length === 0) return;
    this.#commandWaiters = this.#commandWaiters.filter((w) => !lost.includes(w));
    for (const w of lost) w.reject(new CommandLostError(e.index, w.term));
  }

  #settleReads(rd: Ready): void {
    for (const id of rd.droppedReads) {
      const w = this.#readWaiters.get(id);
      if (w === undefined) continue;
      this.#readWaiters.delete(id);
      w.reject(new ReadDroppedError("Cannot serve strong read: no leader confirmed it"));
    }
    for (const rs of rd.readStates) {
      const w = this.#readWaiters.get(rs.requestId);
      if (w !== undefined) w.index = rs.index;
    }
    const applied = this.#lastApplied.index;
    for (const [id, w] of this.#readWaiters) {
      if (w.index !== undefined && w.index <= applied) {
        this.#readWaiters.delete(id);
        w.resolve(w.index);
      }
    }
  }
}
