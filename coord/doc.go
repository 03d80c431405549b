// Package coord runs a load test over many agents through ZooKeeper. The
// coordinator is thin: ZooKeeper holds the state, agents run engines and
// publish what they measured, the coordinator splits budgets, starts
// everyone at one barrier, pushes live changes, moves the budget of a lost
// agent to the survivors, merges histograms exactly and prints the report.
// A standby coordinator takes over a running test by leader election.
//
// # Znode layout
//
// Under the root (--zk-root, default /barrage):
//
//	path                              kind                 written by    holds
//	/agents/agent-NNNNNNNNNN          ephemeral sequential agent         AgentInfo: name, host, cores, version, capacity
//	/election/c-NNNNNNNNNN            ephemeral sequential coordinator   its name; lowest is the leader, each watches its predecessor
//	/current                          persistent           coordinator   the running test's ID (for `barrage set` without --test)
//	/assign/AGENT                     persistent           coordinator   Assignment: test ID, budget (schedule share), config version
//	/tests/ID                         persistent           coordinator   TestState: plan, agents, start time, phase, lost agents
//	/tests/ID/config                  persistent           `set`         LiveConfig {rate, connections, set_at}; CAS on the znode version
//	/tests/ID/ack/AGENT               persistent           agent         the assignment version the agent has prepared
//	/tests/ID/barrier                 persistent           coordinator   the wall-clock start instant (unix ns)
//	/tests/ID/active                  persistent           coordinator   the config version to apply now (second phase of a change)
//	/tests/ID/applied/AGENT           persistent           agent         the version applied and when
//	/tests/ID/snap/AGENT-SEQ          persistent           agent         one interval's snapshot (proto.MarshalSnapshot)
//	/tests/ID/result/AGENT            persistent           agent         the agent's final summary (AgentResult)
//	/tests/ID/stop                    persistent           coordinator   exists: stop now (too few agents left)
//
// Agents write only their own nodes (their registration, ack, applied, snap
// and result nodes); the coordinator never opens a socket to the target.
// A finished test's subtree is deleted by the coordinator once reported; a
// start that fails deletes what it created.
//
// # Scale
//
// Budgets are computed in O(agents) (a weighted split with largest
// remainders). A snapshot is a few hundred bytes of counters plus the
// compressed histograms (typically 1–6 KB), one per agent per second; the
// coordinator reads new snapshots by listing /tests/ID/snap once per
// interval, never through per-node watches. One ZooKeeper ensemble takes a
// few thousand small writes per second, so for thousands of agents the
// layout shards: agents are grouped (/groups/G/agents/...) under
// sub-coordinators, each of which runs this same coordinator for its group
// with a budget handed down by the top coordinator (a group is an agent of
// the level above, with capacity = its agents' cores), merges its group's
// histograms exactly and publishes one merged snapshot per interval upward.
// Merging is associative and exact, so two levels give the same percentiles
// as one. The tests here run one level with 50 in-process agents.
package coord
