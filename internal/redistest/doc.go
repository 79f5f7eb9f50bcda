// Package redistest runs a real Redis Cluster for tests.
//
// Start launches real redis-server processes in cluster mode on free loopback
// ports, joins them with `redis-cli --cluster create`, and returns only once
// every node reports cluster_state:ok and all nodes agree on which master
// owns each of the 16384 slots. A fake or single-node Redis would hide
// exactly the behaviour a cluster client must get right (MOVED and ASK
// redirects, failover, per-node connection pools), so this package exists to
// make the real thing cheap enough to use in ordinary tests: a 3-master
// cluster is ready about 2 s after its processes start. That floor is
// Redis's own: a master reports cluster_state:ok no sooner than 2 s after it
// starts (CLUSTER_WRITABLE_DELAY), and redis-cli polls for the nodes to join
// in one-second steps.
//
// # Processes
//
// Every process the package starts is stopped by a tb.Cleanup registered in
// Start: SIGTERM to its pid, SIGKILL after a bound, then Wait. On Linux the
// processes are also started with a parent-death signal (SIGKILL) from a
// dedicated, permanently locked OS thread, so that a test binary that dies
// without running cleanups (a -timeout panic, a crash) does not leave
// redis-server processes behind. The thread must never exit because Linux
// delivers the parent-death signal when the forking thread exits, not the
// process.
//
// Each node runs in its own tb.TempDir() with no persistence
// (--save "" --appendonly no), so a node that is killed and restarted comes
// back with an empty dataset: a restarted replica resynchronises from its
// master, and a restarted master that was not failed over comes back owning
// its slots but with its keys lost, exactly as a real node without
// persistence would. The node's identity (node ID, epochs, slot map) does
// survive, because it lives in nodes.conf in that directory.
//
// A node's stdout and stderr go to redis.log in its directory. If the test
// has failed by the time the cleanup runs, the last 30 lines of each log are
// written with tb.Log.
//
// # Requirements
//
// redis-server and redis-cli (Redis 7.0 or later) must be on PATH. If they
// are not, Start fails the test with a message saying to run `make test`,
// which installs them; it never skips, because a test that silently skips
// proves nothing.
//
// # Clients
//
// Every client this package creates (Cluster.Client, Node.Client and the
// short-lived ones used to wait and inspect) sets the client name
// ClientName, so tests that count connections on Redis by name are not
// confused by the harness's own connections.
package redistest
