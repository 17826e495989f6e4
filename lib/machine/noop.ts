// NoOp: the state machine of a group used only for leader election.

import type { ApplyContext, StateMachine } from "./state_machine.ts";

/**
 * A state machine that does nothing: commands are `null`, queries are `null`,
 * results are `null`. The default of `groups().withKey(key).join()`, useful
 * for leader election without application logic.
 */
export class NoOp implements StateMachine<null, null, null> {
  /** `"mosaik/noop/v1"`. */
  signature(): string {
    return "mosaik/noop/v1";
  }

  apply(_command: null, _ctx: ApplyContext): void {}

  query(_query: null): null {
    return null;
  }
}
