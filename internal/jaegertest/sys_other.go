//go:build !linux

package jaegertest

import "os/exec"

// setParentDeathSignal is Linux-only; elsewhere Jaeger is stopped only by
// the test's cleanup.
func setParentDeathSignal(*exec.Cmd) {}

// lockFile does nothing outside Linux: concurrent first builds then each
// build on their own, which is slow but correct since the binary is moved
// into place atomically.
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
