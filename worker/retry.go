package worker

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/featurestore/featureworker/internal/resp"
	"github.com/sethvargo/go-retry"
)

// Backoff of commands that hit a transient error, and of redials.
const (
	retryBase = 5 * time.Millisecond
	retryCap  = 250 * time.Millisecond
	dialBase  = 50 * time.Millisecond
	dialCap   = 2 * time.Second
	// maxRedirects bounds MOVED/ASK hops of one command, so that a cluster
	// whose nodes disagree cannot bounce a command forever.
	maxRedirects = 16
)

// newBackoff is exponential from base, capped, with ±25% jitter so that
// workers that failed together do not retry together.
func newBackoff(base, cap time.Duration) retry.Backoff {
	return retry.WithJitterPercent(25, retry.WithCappedDuration(cap, retry.NewExponential(base)))
}

// backoff is a command's retry schedule, created on its first retry so
// that the common path allocates nothing.
type backoff struct{ b retry.Backoff }

func (b *backoff) next() time.Duration {
	if b.b == nil {
		b.b = newBackoff(retryBase, retryCap)
	}
	d, _ := b.b.Next() // never stops: the deadline bounds the retries
	return d
}

// Reasons for a retry, as reported in Stats and spans.
const (
	ReasonMoved       = "moved"
	ReasonAsk         = "ask"
	ReasonTryAgain    = "tryagain"
	ReasonClusterDown = "clusterdown"
	ReasonLoading     = "loading"
	ReasonConn        = "conn"
	ReasonNoOwner     = "no_owner"
)

// redirect is a parsed MOVED or ASK reply.
type redirect struct {
	ask  bool
	slot uint16
	addr string
}

// parseRedirect parses "MOVED 3999 127.0.0.1:6381" and "ASK ...".
func parseRedirect(msg string) (redirect, bool) {
	kind, rest, _ := strings.Cut(msg, " ")
	if kind != "MOVED" && kind != "ASK" {
		return redirect{}, false
	}
	slot, addr, ok := strings.Cut(rest, " ")
	n, err := strconv.Atoi(slot)
	if !ok || err != nil || n < 0 || n >= numSlots || addr == "" {
		return redirect{}, false
	}
	return redirect{ask: kind == "ASK", slot: uint16(n), addr: addr}, true
}

// transientReason returns why an error reply is worth retrying, or "" for a
// reply that will not change by itself (WRONGTYPE, NOPERM, ...).
func transientReason(e resp.Error) string {
	switch prefix, _, _ := strings.Cut(string(e), " "); prefix {
	case "TRYAGAIN":
		return ReasonTryAgain
	case "CLUSTERDOWN", "MASTERDOWN":
		return ReasonClusterDown
	case "LOADING", "BUSY":
		return ReasonLoading
	}
	return ""
}

var errNoOwner = errors.New("no master is known for the key's slot")
