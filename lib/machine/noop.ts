// NoOp: the state machine of a group used only for leader election.

import type { ApplyContext, StateMachine } from "./state_machine.ts";

/**
 * A state machine that does nothing: commands are `null`, queries are `null`,
 * results are `null`. The default of `groups().withKey(key).join()`, useful
 * for leader election without application logic.
 *
 * @example
 * ```ts
 * import { ConsensusConfig, GroupKey, Network, NoOp } from "@mosaik/mosaik";
 * import { MemoryNetwork } from "@mosaik/mosaik/transport/memory";
 *
 * // `withKey(key).join()` alone gives a NoOp group with the default timings;
 * // short timings let this lone member elect itself at once.
 * const consensus = ConsensusConfig.builder()
 *   .withHeartbeatInterval(20).withHeartbeatJitter(5)
 *   .withElectionTimeout(100).withElectionTimeoutJitter(20)
 *   .withBootstrapDelay(0)
 *   .build();
 * await using net = new MemoryNetwork();
 * await using network = await Network.builder("my-app").withTransport(net.transport()).build();
 * await using group = network.groups()
 *   .withKey(GroupKey.generate())
 *   .withStateMachine(new NoOp())
 *   .withConsensusConfig(consensus)
 *   .join();
 * await group.when().isLeader();
 * if (!group.isLeader()) throw new Error("the only member leads");
 * ```
 */
export class NoOp implements StateMachine<null, null, null> {
  /**
   * The machine's versioned name; part of the GroupId.
   *
   * @returns `"mosaik/noop/v1"`
   */
  signature(): string {
    return "mosaik/noop/v1";
  }

  /**
   * Does nothing.
   *
   * @param _command always `null`
   * @param _ctx unused
   */
  apply(_command: null, _ctx: ApplyContext): void {}

  /**
   * Answers nothing.
   *
   * @param _query always `null`
   * @returns `null`
   */
  query(_query: null): null {
    return null;
  }
}
