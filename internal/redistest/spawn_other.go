//go:build !linux

package redistest

import "os/exec"

// startProcess starts cmd. Outside Linux there is no parent-death signal, so a
// test binary that dies without running its cleanups leaves the process behind.
func startProcess(cmd *exec.Cmd) error { return cmd.Start() }
