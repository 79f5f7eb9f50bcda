package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/featurestore/featureworker/subjects"
	"github.com/featurestore/featureworker/worker"
	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestBadInput sends malformed and hostile requests to a real worker: each
// gets a 400 or 413 whose message names the problem, and the worker
// answers a valid request right after each one.
func TestBadInput(t *testing.T) {
	e := newEnv(t, worker.Config{})
	long := strings.Repeat("x", subjects.MaxNameLen+1)
	tests := []struct {
		name, body, timeout string
		code                int    // 0: accepted
		msg                 string // in the error message
	}{
		{"invalid JSON", `{"entities":["e:1"`, "", 400, "invalid JSON"},
		{"not JSON", `hello`, "", 400, "invalid JSON"},
		{"empty body", ``, "", 400, "invalid JSON"},
		{"body is a string", `"e:1"`, "", 400, "invalid JSON"},
		{"entities is a string", `{"entities":"e:1","features":["f0"]}`, "", 400, "entities"},
		{"entity is a number", `{"entities":[1],"features":["f0"]}`, "", 400, "entities"},
		{"features is an object", `{"entities":["e:1"],"features":{"f0":true}}`, "", 400, "features"},
		{"null body", `null`, "", 400, "entities: missing or empty list"},
		{"null lists", `{"entities":null,"features":null}`, "", 400, "entities: missing or empty list"},
		{"null features", `{"entities":["e:1"],"features":null}`, "", 400, "features: missing or empty list"},
		{"null entity", `{"entities":["e:1",null],"features":["f0"]}`, "", 400, "entities[1]: empty or null name"},
		{"null feature", `{"entities":["e:1"],"features":[null]}`, "", 400, "features[0]: empty or null name"},
		{"empty entities", `{"entities":[],"features":["f0"]}`, "", 400, "entities: missing or empty list"},
		{"empty features", `{"entities":["e:1"],"features":[]}`, "", 400, "features: missing or empty list"},
		{"too many entities", `{"entities":` + jsonList("e:", 1001) + `,"features":["f0"]}`, "", 413, "entities: 1001 names, the limit is 1000"},
		{"too many features", `{"entities":["e:1"],"features":` + jsonList("f", 1001) + `}`, "", 413, "features: 1001 names, the limit is 1000"},
		{"empty entity", `{"entities":[""],"features":["f0"]}`, "", 400, "entities[0]: empty or null name"},
		{"empty feature", `{"entities":["e:1"],"features":["f0",""]}`, "", 400, "features[1]: empty or null name"},
		{"duplicate entity", `{"entities":["e:1","e:2","e:1"],"features":["f0"]}`, "", 400, `entities[2] repeats entities[0] ("e:1")`},
		{"duplicate feature", `{"entities":["e:1"],"features":["f0","f0"]}`, "", 400, `features[1] repeats features[0] ("f0")`},
		{"not UTF-8", "{\"entities\":[\"e:\xff\xfe\"],\"features\":[\"f0\"]}", "", 400, "not valid UTF-8"},
		{"hash tag", `{"entities":["{e:1}"],"features":["f0"]}`, "", 400, "entities[0]: character { is not allowed"},
		{"closing brace", `{"entities":["e:1}"],"features":["f0"]}`, "", 400, "entities[0]: character } is not allowed"},
		{"CR LF in entity", `{"entities":["e:1\r\nHMGET x"],"features":["f0"]}`, "", 400, "entities[0]: control character"},
		{"LF in feature", `{"entities":["e:1"],"features":["f0\n"]}`, "", 400, "features[0]: control character"},
		{"raw CR LF in a string", "{\"entities\":[\"e:1\r\n\"],\"features\":[\"f0\"]}", "", 400, "invalid JSON"},
		{"space in entity", `{"entities":["e: 1"],"features":["f0"]}`, "", 400, "entities[0]: space in name"},
		{"NUL in entity", `{"entities":["e:1\u0000"],"features":["f0"]}`, "", 400, "entities[0]: control character"},
		{"entity over MaxNameLen", `{"entities":["` + long + `"],"features":["f0"]}`, "", 413, "entities[0]: 1025 bytes long, the limit is 1024"},
		{"feature over MaxNameLen", `{"entities":["e:1"],"features":["` + long + `"]}`, "", 413, "features[0]: 1025 bytes long"},
		// Unknown fields are ignored, so that callers can send fields a newer
		// worker understands to older workers during a rolling upgrade.
		{"unknown fields", `{"entities":["e:1"],"features":["f0","f1"],"version":2,"options":{"x":[null]}}`, "", 0, ""},
		{"garbage timeout", `{"entities":["e:1"],"features":["f0"]}`, "soon", 400, "Request-Timeout"},
		{"zero timeout", `{"entities":["e:1"],"features":["f0"]}`, "0", 400, "Request-Timeout"},
		{"zero seconds timeout", `{"entities":["e:1"],"features":["f0"]}`, "0s", 400, "Request-Timeout"},
		{"negative timeout", `{"entities":["e:1"],"features":["f0"]}`, "-50ms", 400, "Request-Timeout"},
		{"timeout without a unit", `{"entities":["e:1"],"features":["f0"]}`, "50", 400, "Request-Timeout"},
	}
	for _, tc := range tests {
		reply := e.raw(t, []byte(tc.body), tc.timeout)
		if tc.code == 0 {
			got, err := subjects.DecodeReply(reply)
			if err != nil {
				t.Errorf("%s: %v, want it accepted", tc.name, err)
			} else if err := checkRows([]int{1}, []int{0, 1}, got); err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
		} else {
			checkErrorReply(t, tc.name, reply, tc.code, tc.msg)
		}
		e.checkServing(t, tc.name)
	}

	t.Run("MaxPayload", func(t *testing.T) {
		mp := int(e.client.Conn.MaxPayload())
		valid := bodyOfSize(t, mp)
		checkErrorReply(t, "valid JSON of max payload size", e.raw(t, valid, ""), 413, "entities: ")
		e.checkServing(t, "max payload")

		invalid := bytes.Clone(valid)
		invalid[len(invalid)-1] = ']'
		checkErrorReply(t, "invalid JSON of max payload size", e.raw(t, invalid, ""), 400, "invalid JSON")
		e.checkServing(t, "invalid max payload")

		over := append(bytes.Clone(valid), ' ')
		if _, err := e.client.Request(context.Background(), over); !errors.Is(err, nats.ErrMaxPayload) {
			t.Errorf("a body of max payload + 1: %v, want %v from the client", err, nats.ErrMaxPayload)
		}
	})
}

// raw sends body, with a Request-Timeout header unless timeout is empty,
// and returns the reply.
func (e *env) raw(t *testing.T, body []byte, timeout string) *nats.Msg {
	t.Helper()
	msg := nats.NewMsg(subjects.Lookup)
	msg.Data = body
	if timeout != "" {
		msg.Header.Set(subjects.HeaderRequestTimeout, timeout)
	}
	reply, err := e.client.Conn.RequestMsg(msg, 10*time.Second)
	if err != nil {
		t.Fatalf("request %.60q: %v", body, err)
	}
	return reply
}

// checkErrorReply checks that reply is an error reply with code and a
// message containing msg, the same in its headers and its body.
func checkErrorReply(t *testing.T, name string, reply *nats.Msg, code int, msg string) {
	t.Helper()
	var se *subjects.Error
	if err := subjects.ReplyError(reply); !errors.As(err, &se) || se.Code != code || !strings.Contains(se.Message, msg) {
		t.Errorf("%s: got %v (body %.200s), want %d with a message containing %q", name, err, reply.Data, code, msg)
		return
	}
	var body subjects.ErrorReply
	if err := json.Unmarshal(reply.Data, &body); err != nil || body.Error == nil || *body.Error != *se {
		t.Errorf("%s: body %.200s does not match the headers' %v (%v)", name, reply.Data, se, err)
	}
}

// checkServing checks that a valid lookup is answered correctly.
func (e *env) checkServing(t *testing.T, after string) {
	t.Helper()
	ids, fs := []int{3, 4, seeded + 1}, []int{0, 2}
	got, err := e.client.Lookup(context.Background(), names(entity, ids...), names(feature, fs...))
	if err == nil {
		err = checkRows(ids, fs, got)
	}
	if err != nil {
		t.Errorf("valid lookup after %s: %v", after, err)
	}
}

// jsonList returns a JSON array of n names prefix+"0"...
func jsonList(prefix string, n int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(prefix + strconv.Itoa(i)))
	}
	b.WriteByte(']')
	return b.String()
}

// bodyOfSize returns a valid request of exactly size bytes: as many
// entities as fit, padded with whitespace. Its last byte is the closing '}'.
func bodyOfSize(t *testing.T, size int) []byte {
	t.Helper()
	const head, tail = `{"features":["f0"],"entities":[`, `]}`
	b := []byte(head)
	for i := 0; ; i++ {
		item := strconv.Quote("e:" + strconv.Itoa(i))
		if len(b)+1+len(item)+len(tail) > size {
			break
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, item...)
	}
	b = append(b, bytes.Repeat([]byte{' '}, size-len(b)-len(tail))...)
	b = append(b, tail...)
	if len(b) != size {
		t.Fatalf("built a body of %d bytes, want %d", len(b), size)
	}
	return b
}

// TestKeyPrefixContainment shows that no entity name reads outside the
// worker's key prefix: names that try path tricks, hash tags, another
// tenant's prefix, RESP injection or control characters are either refused
// with a 400 or read prefix+name, exactly, and another tenant's value
// never appears in a reply.
func TestKeyPrefixContainment(t *testing.T) {
	const prefix, secret = "tenant-a:", "TOP-SECRET-of-tenant-b"
	e := newEnv(t, worker.Config{KeyPrefix: prefix})
	ctx := context.Background()
	rdb := e.cluster.Client(t)
	for _, key := range []string{"tenant-b:secret", "secret", "{tenant-b:secret}"} {
		if err := rdb.HSet(ctx, key, "f0", secret).Err(); err != nil {
			t.Fatal(err)
		}
	}
	crafted := []string{
		"tenant-b:secret", "../tenant-b:secret", "..", "../../tenant-b:secret", "/tenant-b:secret",
		`..\tenant-b:secret`, "%2e%2e%2ftenant-b:secret", "{tenant-b:secret}", "{tenant-b}:secret",
		"tenant-b:secret\r\n", "\r\nHMGET tenant-b:secret f0",
		"x\r\n*3\r\n$5\r\nHMGET\r\n$15\r\ntenant-b:secret\r\n$2\r\nf0\r\n",
		"tenant-b:secret\x00", "\x00tenant-b:secret", "tenant-b:*", "*", "tenant-b:secret\u0085",
		"tenant-b:secret ", "tenant-b:secret\u2028", "t\u0435nant-b:secret", // Cyrillic е
		"\uff5btenant-b:secret\uff5d", // fullwidth braces are not hash tags
	}
	// Whatever is accepted must read prefix+name: store a marker there.
	for i, name := range crafted {
		if err := rdb.HSet(ctx, prefix+name, "f0", "marker-"+strconv.Itoa(i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var accepted, refused int
	for i, name := range crafted {
		body, _ := json.Marshal(subjects.LookupRequest{Entities: []string{name}, Features: []string{"f0"}})
		reply := e.raw(t, body, "")
		if strings.Contains(string(reply.Data), secret) || strings.Contains(reply.Header.Get(subjects.HeaderError), secret) {
			t.Fatalf("entity %q read another tenant's value: %s", name, reply.Data)
		}
		got, err := subjects.DecodeReply(reply)
		var se *subjects.Error
		switch {
		case errors.As(err, &se) && se.Code == subjects.CodeBadRequest && strings.Contains(se.Message, "entities[0]: "):
			refused++
		case err != nil:
			t.Errorf("entity %q: %v, want a 400 about it or the value at %q", name, err, prefix+name)
		case len(got) != 1 || len(got[0]) != 1 || got[0][0] == nil || *got[0][0] != "marker-"+strconv.Itoa(i):
			t.Errorf("entity %q read %v, want the value at %q", name, got, prefix+name)
		default:
			accepted++
		}
	}
	t.Logf("%d crafted names refused, %d read inside the prefix", refused, accepted)
	if refused == 0 || accepted == 0 {
		t.Errorf("want both kinds among the crafted names")
	}
	e.checkServing(t, "crafted names") // newEnv seeds under the prefix
}

// poison is a span processor that panics when the "pool wait" span of a
// request whose body is exactly size bytes starts. That span starts inside
// the worker's handler, after the request is accepted and its lookup
// queued; a panicking tracing plugin stands for any bug on that path,
// without a test hook in the worker.
type poison struct{ size int64 }

func (p poison) OnStart(parent context.Context, s sdktrace.ReadWriteSpan) {
	if s.Name() != worker.SpanPoolWait {
		return
	}
	request, ok := trace.SpanFromContext(parent).(sdktrace.ReadOnlySpan)
	if !ok {
		return
	}
	for _, kv := range request.Attributes() {
		if kv.Key == "messaging.message.body.size" && kv.Value.AsInt64() == p.size {
			panic("poisoned request")
		}
	}
}

func (poison) OnEnd(sdktrace.ReadOnlySpan)      {}
func (poison) Shutdown(context.Context) error   { return nil }
func (poison) ForceFlush(context.Context) error { return nil }

// TestPanicIsolated makes the handler panic on some requests: each of those
// gets a 500 and nothing else, the others are answered as usual, and the
// worker's accounting stays exact (every request answered exactly once,
// nothing left pending) once the poisoned requests' deadlines have passed.
func TestPanicIsolated(t *testing.T) {
	poisoned := []byte(`{"entities":["e:5"],   "features":["f1"]}`)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(poison{size: int64(len(poisoned))}))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	e := newEnv(t, worker.Config{TracerProvider: tp})
	const timeout = 200 * time.Millisecond
	for i := range 3 {
		checkErrorReply(t, "poisoned request "+strconv.Itoa(i), e.raw(t, poisoned, timeout.String()), 500, "internal error")
		e.checkServing(t, "a panic")
	}
	time.Sleep(2 * timeout) // a lookup the panic left behind would expire now
	e.checkServing(t, "the poisoned deadlines")
	s := e.worker.Stats()
	if s.Received != 7 || s.Replied != s.Received || s.Pending != 0 || s.Errors != 3 {
		t.Errorf("stats after 3 panics and 4 valid requests: received %d, replied %d, errors %d, pending %d; want 7, 7, 3, 0",
			s.Received, s.Replied, s.Errors, s.Pending)
	}
}
