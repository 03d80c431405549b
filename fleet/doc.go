// Package fleet is what the coordinator and the agents share about
// ZooKeeper: the znode layout, the data each node holds, a decoder for
// each that trusts nothing it reads, name checks, and sessions with
// digest authentication and ACLs. It never links the engine.
//
// # Znode layout
//
// Under the root (--zk-root, default /barrage):
//
//	path                              kind                 written by    holds
//	/agents/agent-NNNNNNNNNN          ephemeral sequential agent         AgentInfo: name, host, cores, version, caps
//	/election/c-NNNNNNNNNN            ephemeral sequential coordinator   CoordInfo; lowest leads, each watches its predecessor
//	/current                          persistent           coordinator   the running test's ID
//	/assign/AGENT                     persistent           coordinator   Assignment: test, epoch, version, plan, budget
//	/tests/ID                         persistent           coordinator   TestState: plan, agents, start, end, phase, epoch, leader, lost, changes
//	/tests/ID/config                  persistent           `set`         LiveConfig {rate, connections}; compare-and-swap on its version
//	/tests/ID/ack/AGENT               persistent           agent         Ack: the version prepared, or why it cannot be
//	/tests/ID/barrier                 persistent           coordinator   the start instant (unix ns)
//	/tests/ID/active                  persistent           coordinator   Activation: apply version V at instant At
//	/tests/ID/applied/AGENT           persistent           agent         Ack: the version applied
//	/tests/ID/snap/AGENT-SEQ          persistent           agent         one interval's snapshot (proto.MarshalSnapshot)
//	/tests/ID/merged/SEQ              persistent           coordinator   one merged interval, once checkpointed
//	/tests/ID/fold                    persistent           coordinator   the checkpoint: what the merged intervals and deleted snapshots held
//	/tests/ID/result/AGENT            persistent           agent         AgentResult: the agent's own summary
//	/tests/ID/stop                    persistent           coordinator   StopInfo: stop now, and why
//
// Agents write only their own nodes (registration, ack, applied, snap,
// result); the coordinator never opens a socket to the target.
//
// # Fencing
//
// A load generator must never send more than it was told to, so both
// sides hold leases they must be able to confirm:
//
//   - An agent sends only while it can confirm its session: each time
//     ZooKeeper answers that its registration exists, it extends the
//     engine's lease to the instant that question was sent plus the
//     session timeout. ZooKeeper cannot expire the session before then, and
//     the coordinator cannot declare the agent lost (and give its budget to
//     the survivors) before the session expires. An agent cut off for
//     longer — frozen by SIGSTOP, partitioned, or with ZooKeeper down —
//     stops sending (what comes due meanwhile is counted as shed, never
//     sent late in a burst). When it finds its session expired or its
//     registration gone, it abandons the test for good and registers anew.
//   - Every budget carries the test, the leadership epoch and the change
//     version; an agent takes only newer versions under the same or a
//     newer epoch. Live changes and rebalances take effect at an interval
//     boundary named in the activation, the same instant on every agent.
//   - Every coordinator write is one multi-op conditional on its election
//     node still existing, which it does exactly as long as the session
//     that won the election. A coordinator that was frozen past its session
//     (a standby took over) writes nothing more and exits 1, superseded.
//   - The coordinator ignores a lost agent's snapshots of intervals that
//     start after its budget moved to the survivors, and says how many.
//
// The trade-off: under a total ZooKeeper outage the agents stop sending
// one session timeout after they lose it, rather than finish their plan
// blind (fail-safe, not fail-static). They keep every snapshot on disk, and
// `barrage report --state-dir` rebuilds the test from them.
//
// # Security
//
// With --zk-auth (a file holding user:password) every node barrage creates
// gets a digest ACL for that identity alone: without the secret nobody can
// read a plan (its headers may hold credentials), write an assignment,
// create the stop node, delete a registration or forge a snapshot. An
// existing node open to anyone is refused. Without --zk-auth the nodes are
// world:anyone and agent and coordinator warn once at start. Either way an
// agent checks every assignment as a plan file is checked, then against
// its own caps (--max-rate, --max-connections) and target allowlist
// (--allow-target; loopback only by default), and a snapshot node that
// existed before the agent wrote it is reported as forged.
package fleet
