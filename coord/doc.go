// Package coord is the coordinator side of a distributed test: leader
// election and fenced writes, budgets (weighted by cores, capped by each
// agent's own caps, interleaved by phase), the start barrier, live changes
// and rebalances at interval boundaries, the merge of the agents'
// snapshots through the pipeline with periodic checkpoints, the test's
// lifecycle (completed, stopped, abandoned, taken over), and the `set`
// and `report` clients. It never links the engine: `go list -deps` of
// this package shows no gnet.
//
// The znode layout and the fencing rules are in package fleet's doc.
//
// # Lifecycle
//
// A coordinator with a plan leads at once or refuses (another leads). It
// deals with the test /current names first: one past its planned end
// plus AbandonGrace is marked abandoned (its data stays for `barrage
// report --zk`); one still within that time is refused, since its agents
// are busy with it and a standby can take it over. A standby joins the
// election only while a test runs, so it never stands in a planned
// coordinator's way; when it leads it takes the test over under a new
// epoch, resuming from the checkpoint.
//
// # Memory and scale
//
// The coordinator folds each snapshot as it arrives: an interval's merged
// histograms live until every agent alive has reported it (or it has
// waited a few intervals), then go into the totals; per agent it keeps
// counters and the set of intervals received. Every few intervals (every
// interval with hundreds of agents) a checkpoint writes the merged
// intervals closed since the last one and the fold state, and deletes the
// snapshot nodes they cover, in one fenced multi-op: ZooKeeper holds a
// few intervals of snapshots, the coordinator a few intervals of
// histograms, whatever the test's length. Snapshots are found by one
// child listing per poll, never through per-node watches, and every watch
// is re-armed only after it fired.
package coord
