// Package chaos is barrage's fault matrix: tests that run the real binary
// (agents, coordinators, `barrage set`, `barrage target`) against a real
// ZooKeeper (internal/zktest: standalone, or a 3-node ensemble on
// loopback), inject one fault per row (kill -9, SIGSTOP past a session,
// a deleted znode, a ZooKeeper leader, follower or quorum lost, absurd live
// values, racing coordinators) and judge the outcome on the built-in
// target's own count of the responses it wrote.
//
// The package holds only tests. The rows are one table in rows_test.go,
// each with its flags, its expected exit codes and its deadline. Plain
// `go test ./chaos/` runs the fastest rows; CHAOS=all runs the whole
// matrix (`make chaos`, which also writes the table into RELIABILITY.md).
// See RELIABILITY.md for the invariants and the last results.
package chaos
