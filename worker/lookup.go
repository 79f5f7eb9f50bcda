package worker

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/featurestore/featureworker/subjects"
)

// lookup is one accepted request on its way through the pool: one command
// per entity, possibly on several nodes. It is finished exactly once, by the
// last command to complete or by the first failure, whichever comes first;
// done is then called once.
type lookup struct {
	prefix   string
	replyTo  string // NATS subject of the reply
	received time.Time
	tr       *traced // nil unless the request is sampled
	entities []string
	features []string
	deadline time.Time

	// rows[i] is entity i's reply row as JSON, written by its command
	// before remaining is decremented, so the finisher sees every row.
	rows      [][]byte
	cmds      []command
	remaining atomic.Int32
	finished  atomic.Bool
	// cause is the last transient error seen, so that a deadline that
	// passes while Redis is failing is reported as unavailable, not slow.
	cause atomic.Pointer[error]
	timer *time.Timer

	// done receives the rows, or the error that ended the lookup. It runs
	// on whichever goroutine finishes the lookup and must not block.
	done func(l *lookup, err *subjects.Error)
}

// command is one HMGET of a lookup, routed and retried on its own.
type command struct {
	l       *lookup
	row     int
	slot    uint16
	asking  bool // send ASKING first: the slot is being imported by the node
	attempt int  // failed attempts so far
	retry   backoff
	reason  string // why the last attempt failed, for its retry's spans

	queuedAt time.Time // for the pool wait metric
	part     *part     // tracing state of a sampled lookup's command
}

func newLookup(prefix string, req *subjects.LookupRequest, deadline time.Time, done func(*lookup, *subjects.Error)) *lookup {
	l := &lookup{
		prefix:   prefix,
		entities: req.Entities,
		features: req.Features,
		deadline: deadline,
		rows:     make([][]byte, len(req.Entities)),
		cmds:     make([]command, len(req.Entities)),
		done:     done,
	}
	l.remaining.Store(int32(len(req.Entities)))
	for i, e := range req.Entities {
		l.cmds[i] = command{l: l, row: i, slot: keySlot(prefix, e)}
	}
	return l
}

// startTimer makes sure the lookup ends by its deadline even if Redis never
// answers.
func (l *lookup) startTimer() {
	l.timer = time.AfterFunc(time.Until(l.deadline), l.expire)
}

// expire runs on the timer's goroutine, possibly before startTimer has
// stored the timer, so it ends the lookup without touching l.timer.
func (l *lookup) expire() {
	err := subjects.Errorf(subjects.CodeTimeout, "deadline passed before Redis answered")
	if cause := l.cause.Load(); cause != nil {
		err = subjects.Errorf(subjects.CodeUnavailable, "redis unavailable until the deadline: %v", *cause)
	}
	if l.finished.CompareAndSwap(false, true) {
		l.done(l, err)
	}
}

// expired reports whether the lookup's deadline has passed at now.
func (l *lookup) expired(now time.Time) bool { return !now.Before(l.deadline) }

// active reports whether the lookup still waits for its commands.
func (l *lookup) active() bool { return !l.finished.Load() }

// setRow stores a command's row and finishes the lookup after the last one.
func (l *lookup) setRow(c *command, row []byte) {
	l.rows[c.row] = row
	if l.remaining.Add(-1) == 0 && l.finished.CompareAndSwap(false, true) {
		l.stopTimer()
		l.done(l, nil)
	}
}

// fail ends the lookup with err unless it has already ended.
func (l *lookup) fail(err *subjects.Error) {
	if l.finished.CompareAndSwap(false, true) {
		l.stopTimer()
		l.done(l, err)
	}
}

func (l *lookup) stopTimer() {
	if l.timer != nil {
		l.timer.Stop()
	}
}

// noteCause records a transient error for expire.
func (l *lookup) noteCause(err error) {
	if err != nil {
		l.cause.Store(&err)
	}
}

// asError turns any error into the *subjects.Error a caller gets.
func asError(err error, code int) *subjects.Error {
	var se *subjects.Error
	if errors.As(err, &se) {
		return se
	}
	return subjects.Errorf(code, "%v", err)
}
