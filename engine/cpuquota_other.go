//go:build !linux

package engine

func readQuota() float64 { return 0 }
