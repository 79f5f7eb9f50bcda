package worker

import (
	"reflect"
	"testing"

	"github.com/featurestore/featureworker/internal/resp"
)

func TestParseClusterSlots(t *testing.T) {
	reply := []any{
		[]any{int64(0), int64(5460), []any{"10.0.0.1", int64(7000), "id1"}, []any{"10.0.0.4", int64(7003), "id4"}},
		[]any{int64(5461), int64(10922), []any{"", int64(7001), "id2"}},
		[]any{int64(10923), int64(16383), []any{"?", int64(7002), "id3"}},
	}
	got, err := parseClusterSlots(reply, "127.0.0.1")
	want := []slotRange{{0, 5460, "10.0.0.1:7000"}, {5461, 10922, "127.0.0.1:7001"}, {10923, 16383, "127.0.0.1:7002"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}
	for _, bad := range []any{
		resp.Error("ERR This instance has cluster support disabled"),
		"OK",
		[]any{[]any{int64(0), int64(16384), []any{"h", int64(1)}}},
		[]any{[]any{int64(9), int64(3), []any{"h", int64(1)}}},
		[]any{[]any{int64(0), int64(1), []any{"h", "port"}}},
	} {
		if _, err := parseClusterSlots(bad, "h"); err == nil {
			t.Errorf("parseClusterSlots(%v) accepted it", bad)
		}
	}
}

func TestClassifyReplies(t *testing.T) {
	if r, ok := parseRedirect("MOVED 3999 127.0.0.1:6381"); !ok || r.ask || r.slot != 3999 || r.addr != "127.0.0.1:6381" {
		t.Errorf("MOVED: %+v %v", r, ok)
	}
	if r, ok := parseRedirect("ASK 1 [::1]:7000"); !ok || !r.ask || r.addr != "[::1]:7000" {
		t.Errorf("ASK: %+v %v", r, ok)
	}
	for _, bad := range []string{"MOVED", "MOVED x 1:2", "MOVED 16384 h:1", "ASK 1", "ERR x"} {
		if _, ok := parseRedirect(bad); ok {
			t.Errorf("parseRedirect(%q) accepted it", bad)
		}
	}
	for msg, want := range map[string]string{
		"TRYAGAIN Multiple keys request during rehashing of slot":  ReasonTryAgain,
		"CLUSTERDOWN The cluster is down":                          ReasonClusterDown,
		"LOADING Redis is loading the dataset in memory":           ReasonLoading,
		"WRONGTYPE Operation against a key holding the wrong kind": "",
		"NOPERM this user has no permissions":                      "",
	} {
		if got := transientReason(resp.Error(msg)); got != want {
			t.Errorf("transientReason(%q) = %q, want %q", msg, got, want)
		}
	}
}
