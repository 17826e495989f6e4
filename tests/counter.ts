// A replicated counter state machine shared by the group tests (no test registration here).

import type { ApplyContext, StateMachine } from "../lib/machine/state_machine.ts";

/** A counter command. */
export type CounterCommand = { add: number };

/** Adds each command's `add`; `query()` answers the total; `applied` counts commands. */
export class Counter implements StateMachine<CounterCommand, null, number> {
  value = 0;
  applied = 0;
  signature(): string {
    return "counter/v1";
  }
  apply(c: CounterCommand, _ctx: ApplyContext): void {
    this.value += c.add;
    this.applied++;
  }
  query(): number {
    return this.value;
  }
  /** Back to a new counter (a node that lost a cluster merge replays the winner's log). */
  reset(): void {
    this.value = 0;
    this.applied = 0;
  }
}
