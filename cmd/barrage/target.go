package main

import (
	"fmt"
	"os"
)

func cmdTarget(args []string) int {
	fmt.Fprintln(os.Stderr, "barrage target: not built yet")
	return 1
}
