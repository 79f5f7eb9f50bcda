package worker

import (
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
)

// Service identity in the NATS service API ($SRV.PING/INFO/STATS), so that
// `nats micro ls|info|stats features` lists every worker.
const (
	ServiceName    = "features"
	ServiceVersion = "1.0.0"
	endpointName   = "lookup"
)

// discovery answers the NATS service API with micro's own types, from the
// worker's counters. It does not use micro.AddService to handle requests,
// for two reasons: micro times a request by its handler, but this worker
// replies after the handler returns, so micro's processing times and error
// counts would be wrong; and micro stops the whole service on a slow
// consumer error, which would silently take the worker out of the queue
// group.
type discovery struct {
	w       *Worker
	id      string
	started time.Time
	subs    []*nats.Subscription

	procNanos atomic.Int64           // sum of receipt-to-reply times
	lastError atomic.Pointer[string] // message of the last error reply
}

func newDiscovery(w *Worker) *discovery {
	return &discovery{w: w, id: nuid.Next(), started: time.Now().UTC()}
}

// start subscribes to the control subjects.
func (d *discovery) start() error {
	handlers := map[micro.Verb]func() any{
		micro.PingVerb:  func() any { return micro.Ping{ServiceIdentity: d.identity(), Type: micro.PingResponseType} },
		micro.InfoVerb:  d.info,
		micro.StatsVerb: d.stats,
	}
	for verb, h := range handlers {
		for _, subject := range controlSubjects(verb, d.id) {
			sub, err := d.w.nc.Subscribe(subject, func(m *nats.Msg) {
				body, _ := json.Marshal(h())
				m.Respond(body)
			})
			if err != nil {
				return err
			}
			d.subs = append(d.subs, sub)
		}
	}
	return nil
}

func controlSubjects(verb micro.Verb, id string) []string {
	all, _ := micro.ControlSubject(verb, "", "")
	kind, _ := micro.ControlSubject(verb, ServiceName, "")
	one, _ := micro.ControlSubject(verb, ServiceName, id)
	return []string{all, kind, one}
}

func (d *discovery) identity() micro.ServiceIdentity {
	return micro.ServiceIdentity{Name: ServiceName, ID: d.id, Version: ServiceVersion, Metadata: map[string]string{}}
}

func (d *discovery) info() any {
	cfg := d.w.cfg
	return micro.Info{
		ServiceIdentity: d.identity(),
		Type:            micro.InfoResponseType,
		Description:     "Feature lookups from a Redis Cluster, batched per node under a fixed connection budget",
		Endpoints: []micro.EndpointInfo{{
			Name: endpointName, Subject: cfg.Subject, QueueGroup: cfg.QueueGroup,
			Metadata: map[string]string{"key_prefix": cfg.KeyPrefix},
		}},
	}
}

func (d *discovery) stats() any {
	s := d.w.Stats()
	ep := &micro.EndpointStats{
		Name:           endpointName,
		Subject:        d.w.cfg.Subject,
		QueueGroup:     d.w.cfg.QueueGroup,
		NumRequests:    int(s.Replied),
		NumErrors:      int(s.Errors),
		ProcessingTime: time.Duration(d.procNanos.Load()),
	}
	if ep.NumRequests > 0 {
		ep.AverageProcessingTime = ep.ProcessingTime / time.Duration(ep.NumRequests)
	}
	if e := d.lastError.Load(); e != nil {
		ep.LastError = *e
	}
	return micro.Stats{ServiceIdentity: d.identity(), Type: micro.StatsResponseType, Started: d.started, Endpoints: []*micro.EndpointStats{ep}}
}

// observe records one reply for STATS.
func (d *discovery) observe(took time.Duration, errMsg string) {
	d.procNanos.Add(int64(took))
	if errMsg != "" {
		d.lastError.Store(&errMsg)
	}
}

func (d *discovery) stop() error {
	var errs []error
	for _, s := range d.subs {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
