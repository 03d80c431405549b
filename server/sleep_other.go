//go:build !linux

package server

import "time"

func precisionSetup() {}

func preciseSleep(d time.Duration) { time.Sleep(d) }
