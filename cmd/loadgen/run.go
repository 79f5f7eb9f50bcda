package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/featurestore/featureworker/internal/featureset"
	"github.com/featurestore/featureworker/internal/redisconns"
	"github.com/featurestore/featureworker/subjects"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

// Load modes of --mode.
const (
	modeClosed = "closed"
	modeOpen   = "open"
)

// clientName names the loadgen's own Redis connections, so that they are
// never counted as the worker's.
const clientName = "loadgen"

// Histogram range: 1µs to 60s at 3 significant digits.
const (
	histMin    = 1
	histMax    = 60_000_000
	histDigits = 3
)

// RunConfig configures Run; the flags of `loadgen run` fill it.
type RunConfig struct {
	NATSURL     string
	NATSConns   int           // connections, used round-robin
	NATSOptions []nats.Option // added to the defaults, for tests and auth
	Subject     string

	// RedisAddrs are seed nodes of the cluster whose masters' CLIENT LIST is
	// sampled for connections named ConnNamePrefix*. Empty: no sampling.
	RedisAddrs     []string
	ConnNamePrefix string
	SampleInterval time.Duration

	Set                      featureset.Set // what was seeded: every value is checked against it
	ReqEntities, ReqFeatures int
	Keys                     string  // keysUniform or keysZipf
	ZipfS                    float64 // Zipf exponent, > 1

	Mode           string
	Concurrency    int     // closed loop: requests in flight
	Rate           float64 // open loop: intended requests per second
	MaxOutstanding int     // open loop: in flight beyond this are dropped
	Duration       time.Duration
	Warmup         time.Duration
	Timeout        time.Duration // per request

	Budget int    // connections per node the worker should hold, for the report
	Label  string // names the run in the report

	// NoCheck skips checking values, for workers that do not read Redis.
	NoCheck bool

	// Progress, if not nil, receives a live line every second.
	Progress io.Writer
}

// Validate reports the first problem with c.
func (c *RunConfig) Validate() error {
	if err := validatePick(c.Set.Entities, c.Set.Features, c.ReqEntities, c.ReqFeatures); err != nil {
		return err
	}
	switch {
	case c.Keys != keysUniform && c.Keys != keysZipf:
		return fmt.Errorf("--keys must be %s or %s", keysUniform, keysZipf)
	case c.Keys == keysZipf && c.ZipfS <= 1:
		return errors.New("--zipf-s must be greater than 1")
	case c.Mode != modeClosed && c.Mode != modeOpen:
		return fmt.Errorf("--mode must be %s or %s", modeClosed, modeOpen)
	case c.Mode == modeClosed && c.Concurrency < 1:
		return errors.New("--concurrency must be at least 1")
	case c.Mode == modeOpen && (c.Rate <= 0 || c.MaxOutstanding < 1):
		return errors.New("open loop needs --rate > 0 and --max-outstanding ≥ 1")
	case c.NATSConns < 1:
		return errors.New("--nats-conns must be at least 1")
	case c.Duration <= 0 || c.Warmup < 0 || c.Timeout <= 0:
		return errors.New("--duration and --timeout must be positive, --warmup not negative")
	}
	return nil
}

// Run sends lookups as c says for c.Warmup plus c.Duration and reports on
// the Duration part. It returns early, with a report of what was measured,
// when ctx ends. Requests in flight when sending stops are waited for (at
// most c.Timeout) and counted.
func Run(ctx context.Context, c RunConfig) (*Report, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var masters []string
	if len(c.RedisAddrs) > 0 {
		var err error
		if masters, err = discoverMasters(ctx, c.RedisAddrs); err != nil {
			return nil, err
		}
	}
	clients, closeNATS, err := connectNATS(c)
	if err != nil {
		return nil, err
	}
	defer closeNATS()

	r := newRunner(c, clients, masters)
	sampler := redisconns.NewSampler(redisconns.SamplerConfig{
		Addrs: masters, NamePrefix: c.ConnNamePrefix, Interval: c.SampleInterval, OnSample: r.rec.onConns,
	})
	defer sampler.Close()
	if len(masters) > 0 {
		// Started before the warmup: the budget must hold while the worker
		// ramps up too, so the report's min/max cover the whole run.
		go sampler.Run(ctx)
	}

	begin := time.Now()
	r.rec.measureStart = begin.Add(c.Warmup)
	end := r.rec.measureStart.Add(c.Duration)
	loadCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	measured := make(chan time.Time, 1)
	go func() { measured <- r.rec.clock(loadCtx, end, r.progress) }()
	if c.Mode == modeOpen {
		r.openLoop(loadCtx, begin, end)
	} else {
		r.closedLoop(loadCtx, end)
	}
	measuredEnd := <-measured
	r.rec.tick(measuredEnd, false) // what completed after the window closed
	if c.Progress != nil && len(r.rec.rows) > 0 {
		fmt.Fprintln(c.Progress)
	}
	sampler.Close() // stops Run: Snapshot is final
	return r.report(measuredEnd, sampler.Snapshot()), nil
}

// newClusterClient is the go-redis client of seed and master discovery.
func newClusterClient(addrs []string) *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ClientName: clientName})
}

// discoverMasters returns the address of every master, sorted, from
// CLUSTER SLOTS: sampling only the seed nodes given would miss the others.
func discoverMasters(ctx context.Context, seeds []string) ([]string, error) {
	rdb := newClusterClient(seeds)
	defer rdb.Close()
	slots, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("discovering the masters from %v: %w", seeds, err)
	}
	var masters []string
	for _, s := range slots {
		if len(s.Nodes) > 0 && !slices.Contains(masters, s.Nodes[0].Addr) {
			masters = append(masters, s.Nodes[0].Addr)
		}
	}
	slices.Sort(masters)
	return masters, nil
}

// connectNATS opens c.NATSConns connections: one connection's single
// reader and writer goroutines would otherwise cap the rate the loadgen can
// offer, whatever the worker can take.
func connectNATS(c RunConfig) ([]*subjects.Client, func(), error) {
	var conns []*nats.Conn
	closeAll := func() {
		for _, nc := range conns {
			nc.Close()
		}
	}
	var clients []*subjects.Client
	for i := range c.NATSConns {
		opts := append([]nats.Option{nats.Name(fmt.Sprintf("%s-%d", clientName, i))}, c.NATSOptions...)
		nc, err := nats.Connect(c.NATSURL, opts...)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("connecting to NATS at %s: %w", c.NATSURL, err)
		}
		conns = append(conns, nc)
		clients = append(clients, &subjects.Client{Conn: nc, Subject: c.Subject, Timeout: c.Timeout})
	}
	return clients, closeAll, nil
}

// runner holds what the senders share.
type runner struct {
	cfg     RunConfig
	clients []*subjects.Client
	rec     *recorder
	// reqCtx never ends: a request is bounded by cfg.Timeout alone, so that
	// stopping (the end of the window, Ctrl-C) does not turn the requests
	// in flight into errors.
	reqCtx       context.Context
	entityNames  []string // by id, past the set for the missing ones
	featureNames []string
	jobs         sync.Pool // *job, for the open loop
}

func newRunner(c RunConfig, clients []*subjects.Client, masters []string) *runner {
	r := &runner{
		cfg:          c,
		clients:      clients,
		rec:          newRecorder(max(4, 2*runtime.GOMAXPROCS(0)), masters),
		reqCtx:       context.Background(),
		entityNames:  nameTable(featureset.Entity, c.Set.Entities+missingRange(c.Set.Entities)),
		featureNames: nameTable(featureset.Feature, c.Set.Features),
	}
	r.jobs.New = func() any { return r.newJob() }
	return r
}

// job is one request and the buffers it is built in, reused from one
// request to the next.
type job struct {
	ids, fs     []int
	ents, feats []string
	client      *subjects.Client
	shard       int
	intended    time.Time // send time; in open loop, the scheduled one
}

func (r *runner) newJob() *job {
	return &job{
		ids: make([]int, r.cfg.ReqEntities), ents: make([]string, r.cfg.ReqEntities),
		fs: make([]int, r.cfg.ReqFeatures), feats: make([]string, r.cfg.ReqFeatures),
	}
}

func (r *runner) newPicker(seed uint64) *picker {
	s := 0.0
	if r.cfg.Keys == keysZipf {
		s = r.cfg.ZipfS
	}
	return newPicker(seed, r.cfg.Set.Entities, r.cfg.Set.Features, s)
}

// fill draws the next request of j from p.
func (r *runner) fill(j *job, p *picker) {
	p.pick(j.ids, j.fs)
	for k, id := range j.ids {
		j.ents[k] = r.entityNames[id]
	}
	for k, id := range j.fs {
		j.feats[k] = r.featureNames[id]
	}
}

// do sends j, checks the reply and records the outcome.
func (r *runner) do(j *job) {
	rows, err := j.client.Lookup(r.reqCtx, j.ents, j.feats)
	done := time.Now()
	var wrong error
	if err == nil && !r.cfg.NoCheck {
		wrong = r.cfg.Set.Check(j.ids, j.fs, rows)
	}
	r.rec.record(j.shard, j.intended, done, err, wrong)
}

// closedLoop keeps cfg.Concurrency requests in flight: each sender sends
// its next request when the previous one is answered. It measures what
// the service does at that concurrency, but a stall also stops the
// senders, so the waits they would have seen go unrecorded (coordinated
// omission); use the open loop for latency under a given load.
func (r *runner) closedLoop(ctx context.Context, end time.Time) {
	var wg sync.WaitGroup
	for g := range r.cfg.Concurrency {
		wg.Go(func() {
			p := r.newPicker(uint64(g) + 1)
			j := r.newJob()
			j.client = r.clients[g%len(r.clients)]
			j.shard = g % len(r.rec.shards)
			for ctx.Err() == nil {
				r.fill(j, p)
				if j.intended = time.Now(); !j.intended.Before(end) {
					return
				}
				r.do(j)
			}
		})
	}
	wg.Wait()
}

// openLoop sends at cfg.Rate on a fixed schedule whatever the replies do,
// and measures each latency from the scheduled send time, so that a stall
// (of the service or of the loadgen itself) counts for every request it
// delays: coordinated omission is corrected. A request scheduled while
// cfg.MaxOutstanding are in flight is not sent but counted as dropped.
func (r *runner) openLoop(ctx context.Context, begin, end time.Time) {
	p := r.newPicker(0)
	interval := float64(time.Second) / r.cfg.Rate
	var wg sync.WaitGroup
	var outstanding atomic.Int64
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for k := 0; ; k++ {
		intended := begin.Add(time.Duration(float64(k) * interval))
		if !intended.Before(end) {
			break
		}
		// Behind schedule, everything due is sent at once.
		if d := time.Until(intended); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		if outstanding.Load() >= int64(r.cfg.MaxOutstanding) {
			r.rec.drop(intended)
			continue
		}
		j := r.jobs.Get().(*job)
		r.fill(j, p)
		j.intended = intended
		j.client = r.clients[k%len(r.clients)]
		j.shard = k % len(r.rec.shards)
		outstanding.Add(1)
		wg.Go(func() {
			r.do(j)
			outstanding.Add(-1)
			r.jobs.Put(j)
		})
	}
	wg.Wait()
}

// progress prints the live line for the row just closed.
func (r *runner) progress(s Second) {
	if r.cfg.Progress == nil {
		return
	}
	fmt.Fprintf(r.cfg.Progress, "\r%6.1fs  %8.0f req/s  p50 %-7s p99 %-7s errors %-6d conns %v   ",
		s.T, s.Throughput, micros(s.P50), micros(s.P99), s.Errors, s.Conns)
}

// report assembles the Report once the run is over.
func (r *runner) report(measuredEnd time.Time, conns map[string]redisconns.NodeStats) *Report {
	c, rec := r.cfg, r.rec
	rep := &Report{
		Label:     c.Label,
		Mode:      c.Mode,
		NATSConns: c.NATSConns,
		Shape: Shape{
			Keys: c.Keys, Entities: c.Set.Entities, Features: c.Set.Features, ValueSize: c.Set.ValueSize,
			ReqEntities: c.ReqEntities, ReqFeatures: c.ReqFeatures,
		},
		Start:       rec.measureStart,
		Duration:    max(0, measuredEnd.Sub(rec.measureStart).Round(time.Millisecond).Seconds()),
		Warmup:      c.Warmup.Seconds(),
		Requests:    rec.totals.requests,
		Errors:      make(map[string]int64, numKinds),
		Dropped:     rec.dropped.Load(),
		WrongValues: rec.totals.wrong,
		Unchecked:   c.NoCheck,
		Budget:      c.Budget,
		Connections: []NodeConns{},
		Seconds:     rec.rows,
	}
	if c.Mode == modeOpen {
		rep.Rate = c.Rate
	} else {
		rep.Concurrency = c.Concurrency
	}
	if c.Keys == keysZipf {
		rep.Shape.ZipfS = c.ZipfS
	}
	if rep.Duration > 0 {
		rep.Throughput = float64(rep.Requests) / rep.Duration
	}
	h := rec.total
	rep.Latency = Latency{
		Count: h.TotalCount(), Mean: h.Mean(), Max: h.Max(),
		P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99), P999: h.ValueAtQuantile(99.9),
	}
	for k, name := range kindNames {
		rep.Errors[name] = rec.totals.errs[k]
		rep.ErrorTotal += rec.totals.errs[k]
	}
	rec.sampleMu.Lock()
	rep.ErrorSamples, rep.WrongSamples = rec.errSamples, rec.wrongSamples
	rec.sampleMu.Unlock()
	for _, addr := range rec.nodes {
		s := conns[addr]
		rep.Connections = append(rep.Connections, NodeConns{Addr: addr, Min: s.Min, Max: s.Max, Samples: s.Samples, Errors: s.Errors})
	}
	if rep.Seconds == nil {
		rep.Seconds = []Second{}
	}
	return rep
}

// classify maps a Lookup error to its kind. Order matters: a caller-side
// timeout also matches subjects.ErrTimeout (a 504), and no responders also
// matches subjects.ErrUnavailable (a 503).
func classify(err error) errKind {
	var e *subjects.Error
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return kindNoResponders
	case errors.Is(err, context.DeadlineExceeded):
		return kindTimeout
	case errors.As(err, &e):
		switch e.Code {
		case subjects.CodeBadRequest:
			return kind400
		case subjects.CodeTooLarge:
			return kind413
		case subjects.CodeInternal:
			return kind500
		case subjects.CodeUnavailable:
			return kind503
		case subjects.CodeTimeout:
			return kind504
		}
	}
	return kindOther
}

// recorder collects outcomes. Senders record into shards, each a histogram
// and counters behind its own mutex, so that they seldom wait for one
// another; once a second the clock goroutine moves the shards into the
// current row and the totals.
type recorder struct {
	measureStart time.Time // outcomes of requests sent earlier are warmup
	shards       []*shard
	dropped      atomic.Int64

	keptErrs, keptWrong      atomic.Int64 // len of the samples, read without the lock
	sampleMu                 sync.Mutex
	errSamples, wrongSamples []string

	nodes   []string       // masters, sorted
	nodeIdx map[string]int // read-only once built
	connMax []atomic.Int64 // most connections per node since the row began, -1 for none

	// Owned by the clock goroutine, then by Run once it has returned.
	total   *hdrhistogram.Histogram
	totals  tally
	row     *hdrhistogram.Histogram // the current (last) row's latencies
	rowTall tally
	rows    []Second
	rowFrom time.Time // when the current row began
	rowLen  float64   // its length in seconds
}

type shard struct {
	mu    sync.Mutex
	hist  *hdrhistogram.Histogram
	tally tally
}

// tally counts outcomes: requests of every outcome, and among them wrong
// values and errors.
type tally struct {
	requests, wrong int64
	errs            [numKinds]int64
}

func (t *tally) add(o *tally) {
	t.requests += o.requests
	t.wrong += o.wrong
	for k := range t.errs {
		t.errs[k] += o.errs[k]
	}
}

func (t *tally) errors() (n int64) {
	for _, e := range t.errs {
		n += e
	}
	return n
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

func newRecorder(shards int, nodes []string) *recorder {
	rec := &recorder{
		nodes:   nodes,
		nodeIdx: make(map[string]int, len(nodes)),
		connMax: make([]atomic.Int64, len(nodes)),
		total:   newHist(),
		row:     newHist(),
	}
	for range shards {
		rec.shards = append(rec.shards, &shard{hist: newHist()})
	}
	for i, n := range nodes {
		rec.nodeIdx[n] = i
		rec.connMax[i].Store(-1)
	}
	return rec
}

// record counts the outcome of a request sent (or scheduled) at intended.
func (rec *recorder) record(sh int, intended, done time.Time, err, wrong error) {
	if intended.Before(rec.measureStart) {
		return
	}
	us := min(max(done.Sub(intended).Microseconds(), histMin), histMax)
	s := rec.shards[sh]
	s.mu.Lock()
	s.tally.requests++
	switch {
	case err != nil:
		s.tally.errs[classify(err)]++
	default:
		s.hist.RecordValue(us)
		if wrong != nil {
			s.tally.wrong++
		}
	}
	s.mu.Unlock()
	switch {
	case err != nil:
		rec.sample(&rec.keptErrs, &rec.errSamples, err)
	case wrong != nil:
		rec.sample(&rec.keptWrong, &rec.wrongSamples, wrong)
	}
}

// sample keeps the first maxSamples distinct messages. The lock is taken
// only until that many are kept, so an error storm does not serialise the
// senders.
func (rec *recorder) sample(kept *atomic.Int64, into *[]string, err error) {
	if kept.Load() >= maxSamples {
		return
	}
	msg := err.Error()
	rec.sampleMu.Lock()
	if len(*into) < maxSamples && !slices.Contains(*into, msg) {
		*into = append(*into, msg)
		kept.Store(int64(len(*into)))
	}
	rec.sampleMu.Unlock()
}

// drop counts an open-loop request that was not sent.
func (rec *recorder) drop(intended time.Time) {
	if !intended.Before(rec.measureStart) {
		rec.dropped.Add(1)
	}
}

// onConns is the sampler's hook: it keeps the most connections seen per
// node in the current row.
func (rec *recorder) onConns(addr string, n int) {
	i, ok := rec.nodeIdx[addr]
	if !ok {
		return
	}
	for m := &rec.connMax[i]; ; {
		old := m.Load()
		if int64(n) <= old || m.CompareAndSwap(old, int64(n)) {
			return
		}
	}
}

// clock closes a row every second from measureStart until end or ctx
// ends, and returns when measuring stopped.
func (rec *recorder) clock(ctx context.Context, end time.Time, progress func(Second)) time.Time {
	timer := time.NewTimer(time.Until(rec.measureStart))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
		if time.Now().Before(rec.measureStart) {
			return rec.measureStart // stopped during the warmup
		}
	}
	for i := range rec.connMax {
		rec.connMax[i].Store(-1) // forget the warmup
	}
	rec.rowFrom = rec.measureStart
	for next := rec.measureStart.Add(time.Second); ; next = next.Add(time.Second) {
		at := next
		if at.After(end) {
			at = end
		}
		timer.Reset(time.Until(at))
		select {
		case <-timer.C:
		case <-ctx.Done():
			if now := time.Now(); now.Before(at) {
				at = now
			}
		}
		rec.tick(at, at.After(rec.rowFrom) || len(rec.rows) == 0)
		progress(rec.rows[len(rec.rows)-1])
		if ctx.Err() != nil || !at.Before(end) {
			return at
		}
	}
}

// tick moves the shards into the totals and into the current row, which
// ends at at. With newRow, the previous row is closed and a new one begun
// (taking the connection maxima of its second); without, the shards are
// added to the last row, as happens for the requests that complete after
// the window closed.
func (rec *recorder) tick(at time.Time, newRow bool) {
	if newRow {
		rec.row.Reset()
		rec.rowTall = tally{}
		conns := make([]int, len(rec.connMax))
		for i := range rec.connMax {
			conns[i] = int(rec.connMax[i].Swap(-1))
		}
		rec.rows = append(rec.rows, Second{Conns: conns})
	}
	for _, s := range rec.shards {
		s.mu.Lock()
		rec.total.Merge(s.hist)
		rec.row.Merge(s.hist)
		rec.totals.add(&s.tally)
		rec.rowTall.add(&s.tally)
		s.hist.Reset()
		s.tally = tally{}
		s.mu.Unlock()
	}
	if len(rec.rows) == 0 {
		return // nothing was measured; the totals hold whatever slipped in
	}
	last := &rec.rows[len(rec.rows)-1]
	if newRow {
		last.T = at.Sub(rec.measureStart).Round(time.Millisecond).Seconds()
		rec.rowLen = at.Sub(rec.rowFrom).Seconds()
		rec.rowFrom = at
	}
	last.Requests = rec.rowTall.requests
	if rec.rowLen > 0 {
		last.Throughput = float64(last.Requests) / rec.rowLen
	}
	last.Errors = rec.rowTall.errors()
	last.P50 = rec.row.ValueAtQuantile(50)
	last.P99 = rec.row.ValueAtQuantile(99)
}
