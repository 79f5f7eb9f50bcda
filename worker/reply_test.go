package worker

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `quo"te\`, "tab\tnl\ncr\r", "\x00\x1f\x7f", "é€😀", "\xff\xfe", "a\u2028b\u2029", "<&>"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		out := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("appendJSONString(%q) = %s: not JSON: %v", s, out, err)
		}
		// encoding/json decodes to the same string as it would encode.
		want := string(s)
		if !utf8.Valid(s) {
			want = string([]rune(string(s))) // invalid bytes become U+FFFD
		}
		if got != want {
			t.Fatalf("round trip of %q = %q, want %q", s, got, want)
		}
	})
}

func TestAppendValues(t *testing.T) {
	var r0, r1 []byte
	r0 = appendCell(r0, 0, []byte("31"), false)
	r0 = appendCell(r0, 1, nil, true)
	r1 = appendCell(r1, 0, []byte(`a"b`), false)
	rows := [][]byte{append(append([]byte("["), r0...), ']'), append(append([]byte("["), r1...), ']')}
	got := string(appendValues(nil, rows))
	want := `{"values":[["31",null],["a\"b"]]}`
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
