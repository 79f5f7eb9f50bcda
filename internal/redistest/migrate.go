package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// migrateBatch is the number of keys moved by one MIGRATE.
const migrateBatch = 100

// Migration is a slot move in progress, between BeginMove and Finish. While
// it is in progress the source answers ASK for keys of the slot it no longer
// holds, and the target serves them only to clients that sent ASKING; once
// it is finished the source answers MOVED. A Migration that is never
// finished leaves the slot half-moved until the cluster is stopped.
//
// A Migration is not safe for concurrent use.
type Migration struct {
	Slot     int
	From, To *Node

	c        *Cluster
	finished bool
}

// MoveSlot moves slot, with all its keys, to the master to, the way
// redis-cli --cluster reshard does: CLUSTER SETSLOT IMPORTING on the target
// and MIGRATING on the source, MIGRATE of the keys in batches found with
// CLUSTER GETKEYSINSLOT, then CLUSTER SETSLOT NODE on the target, the source
// and every other master. Clients therefore see ASK during the move and
// MOVED after it. MoveSlot returns once every running node reports to as the
// slot's owner in CLUSTER SLOTS (at most 30s). Moving a slot to its owner
// does nothing.
//
// MoveSlot is BeginMove followed by Finish; use those to observe the
// half-moved state.
func (c *Cluster) MoveSlot(tb testing.TB, slot int, to *Node) {
	tb.Helper()
	checkSlot(tb, slot)
	if c.slotMap(tb)[slot] == to {
		return
	}
	c.BeginMove(tb, slot, to).Finish(tb)
}

// BeginMove starts moving slot to the master to: it sets the slot IMPORTING
// on to and MIGRATING on its current owner, and moves no keys. It fails the
// test if to is not a running master of this cluster or already owns slot.
func (c *Cluster) BeginMove(tb testing.TB, slot int, to *Node) *Migration {
	tb.Helper()
	checkSlot(tb, slot)
	if to == nil || to.c != c {
		tb.Fatalf("redistest: BeginMove: target is not a node of this cluster")
	}
	if !to.Running() {
		tb.Fatalf("redistest: BeginMove: target %s is not running", to.Addr)
	}
	from := c.slotMap(tb)[slot]
	if from == nil {
		tb.Fatalf("redistest: BeginMove: slot %d has no owner", slot)
	}
	if from == to {
		tb.Fatalf("redistest: BeginMove: %s already owns slot %d", to.Addr, slot)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if role := role(ctx, tb, to); role != "master" {
		tb.Fatalf("redistest: BeginMove: target %s is a %s, not a master", to.Addr, role)
	}
	// IMPORTING first: once the source is MIGRATING it sends clients to the
	// target with ASK, and the target must already accept them.
	if err := to.client.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", from.ID).Err(); err != nil {
		tb.Fatalf("redistest: CLUSTER SETSLOT %d IMPORTING %s on %s: %v", slot, from.ID, to.Addr, err)
	}
	if err := from.client.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", to.ID).Err(); err != nil {
		tb.Fatalf("redistest: CLUSTER SETSLOT %d MIGRATING %s on %s: %v", slot, to.ID, from.Addr, err)
	}
	tb.Logf("redistest: moving slot %d from %s to %s", slot, from.Addr, to.Addr)
	return &Migration{Slot: slot, From: from, To: to, c: c}
}

// MigrateKeys moves up to n keys of the slot (all that are left if n <= 0)
// from the source to the target with MIGRATE ... REPLACE KEYS, and returns
// how many it moved.
func (m *Migration) MigrateKeys(tb testing.TB, n int) int {
	tb.Helper()
	if m.finished {
		tb.Fatalf("redistest: MigrateKeys: the move of slot %d is already finished", m.Slot)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	moved := 0
	for n <= 0 || moved < n {
		batch := migrateBatch
		if n > 0 {
			batch = min(batch, n-moved)
		}
		keys, err := m.From.client.ClusterGetKeysInSlot(ctx, m.Slot, batch).Result()
		if err != nil {
			tb.Fatalf("redistest: CLUSTER GETKEYSINSLOT %d %d on %s: %v", m.Slot, batch, m.From.Addr, err)
		}
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", "127.0.0.1", m.To.Port, "", 0, opTimeout.Milliseconds(), "REPLACE"}
		if m.c.password != "" {
			args = append(args, "AUTH", m.c.password)
		}
		args = append(args, "KEYS")
		for _, k := range keys {
			args = append(args, k)
		}
		if err := m.From.client.Do(ctx, args...).Err(); err != nil {
			tb.Fatalf("redistest: MIGRATE %d keys of slot %d from %s to %s: %v", len(keys), m.Slot, m.From.Addr, m.To.Addr, err)
		}
		moved += len(keys)
	}
	return moved
}

// Finish moves the keys that are left, assigns the slot to the target with
// CLUSTER SETSLOT NODE on the target, then the source (in that order, so
// that no client is bounced between them), then every other running master,
// and waits until every running node reports the target as the owner.
func (m *Migration) Finish(tb testing.TB) {
	tb.Helper()
	m.MigrateKeys(tb, 0)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	setNode := func(n *Node) {
		tb.Helper()
		if err := n.client.Do(ctx, "CLUSTER", "SETSLOT", m.Slot, "NODE", m.To.ID).Err(); err != nil {
			tb.Fatalf("redistest: CLUSTER SETSLOT %d NODE %s on %s: %v", m.Slot, m.To.ID, n.Addr, err)
		}
	}
	setNode(m.To)
	setNode(m.From)
	for _, n := range m.c.Nodes {
		if n != m.To && n != m.From && n.Running() && role(ctx, tb, n) == "master" {
			setNode(n)
		}
	}
	m.finished = true
	m.c.waitSlotOwner(tb, m.Slot, m.To)
	tb.Logf("redistest: moved slot %d from %s to %s", m.Slot, m.From.Addr, m.To.Addr)
}

// waitSlotOwner waits until every running node's CLUSTER SLOTS names owner
// as the master of slot.
func (c *Cluster) waitSlotOwner(tb testing.TB, slot int, owner *Node) {
	tb.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for {
		problem := ""
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			if got, err := slotOwnerOn(ctx, n, slot); err != nil {
				problem = fmt.Sprintf("%s: CLUSTER SLOTS: %v", n.Addr, err)
			} else if got != owner.Addr {
				problem = fmt.Sprintf("%s says slot %d is on %q", n.Addr, slot, got)
			}
			if problem != "" {
				break
			}
		}
		cancel()
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: slot %d not on %s everywhere after %v: %s", slot, owner.Addr, convergeTimeout, problem)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func slotOwnerOn(ctx context.Context, n *Node, slot int) (string, error) {
	slots, err := n.client.ClusterSlots(ctx).Result()
	if err != nil {
		return "", err
	}
	for _, s := range slots {
		if s.Start <= slot && slot <= s.End && len(s.Nodes) > 0 {
			return s.Nodes[0].Addr, nil
		}
	}
	return "", nil
}

// role returns "master" or "slave" from the node's INFO replication.
func role(ctx context.Context, tb testing.TB, n *Node) string {
	tb.Helper()
	info, err := n.client.Info(ctx, "replication").Result()
	if err != nil {
		tb.Fatalf("redistest: INFO replication on %s: %v", n.Addr, err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "role:"); ok {
			return v
		}
	}
	tb.Fatalf("redistest: INFO replication on %s has no role", n.Addr)
	return ""
}

func checkSlot(tb testing.TB, slot int) {
	tb.Helper()
	if slot < 0 || slot >= NumSlots {
		tb.Fatalf("redistest: slot %s out of range [0, %d)", strconv.Itoa(slot), NumSlots)
	}
}
