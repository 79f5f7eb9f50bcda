package worker

import (
	"errors"
	"fmt"
)

// Health reports whether the worker can serve: nil when it is subscribed,
// connected to NATS, and has at least one open connection to every master.
// It is for readiness checks; a worker that is draining is not ready.
func (w *Worker) Health() error {
	switch {
	case !w.sub.IsValid() || w.sub.IsDraining():
		return errors.New("draining: not taking requests")
	case !w.nc.IsConnected():
		return fmt.Errorf("nats: %v", w.nc.Status())
	}
	for _, n := range w.pool.Stats().Nodes {
		if n.Open == 0 {
			return fmt.Errorf("redis node %s: no open connection (last dial error: %s)", n.Addr, n.LastDialErr)
		}
	}
	return nil
}
