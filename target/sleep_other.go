//go:build !linux

package target

import "time"

func precisionSetup() {}

func preciseSleep(d time.Duration) { time.Sleep(d) }
