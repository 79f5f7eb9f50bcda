// Package envflag gives every flag of a flag.FlagSet an environment
// variable to fall back to: its name in upper case with '_' for '-'
// (NATS_URL for --nats-url). A flag given on the command line wins. Both
// commands of this project follow it, so a deployment can configure either
// the same way.
package envflag

import (
	"flag"
	"fmt"
	"strings"
)

// Name is the environment variable of the flag named flagName.
func Name(flagName string) string {
	return strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Document appends " (env NAME)" to the usage of every flag in fs, so that
// -help lists the variables. Call it once, after defining the flags.
func Document(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) { f.Usage += " (env " + Name(f.Name) + ")" })
}

// Apply sets every flag that was not on the command line from its
// environment variable, when getenv returns a non-empty value for it. Call
// it after fs.Parse. A nil getenv sets nothing.
func Apply(fs *flag.FlagSet, getenv func(string) string) error {
	if getenv == nil {
		return nil
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(Name(f.Name)); v != "" && !given[f.Name] && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("environment %s=%q: %w", Name(f.Name), v, e)
			}
		}
	})
	return err
}

// List splits a comma-separated flag value, dropping blanks.
func List(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
