package engine

import "os"

func readQuota() float64 { return cgroupQuota(os.DirFS("/")) }
