package envflag

import (
	"flag"
	"strings"
	"testing"
)

func TestApply(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	a := fs.String("nats-url", "default", "")
	b := fs.Int("max-batch", 1, "")
	c := fs.String("key-prefix", "", "")
	Document(fs)
	if err := fs.Parse([]string{"--max-batch", "9"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"NATS_URL": "nats://env", "MAX_BATCH": "7"}
	if err := Apply(fs, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *a != "nats://env" || *b != 9 || *c != "" {
		t.Fatalf("got %q %d %q: want the env for unset flags and the command line over the env", *a, *b, *c)
	}
	if u := fs.Lookup("max-batch").Usage; !strings.Contains(u, "(env MAX_BATCH)") {
		t.Fatalf("usage %q lacks the variable", u)
	}
	env["MAX_BATCH"] = "x"
	fs2 := flag.NewFlagSet("t", flag.ContinueOnError)
	fs2.Int("max-batch", 1, "")
	if err := Apply(fs2, func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "MAX_BATCH") {
		t.Fatalf("bad env value: %v", err)
	}
	if got := List(" a:1, ,b:2,"); strings.Join(got, "|") != "a:1|b:2" {
		t.Fatalf("List = %q", got)
	}
}
