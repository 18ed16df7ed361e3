//go:build !unix

package simulate_test

import "time"

// cpuTime is unknown here: BenchmarkReplay reports wall time only.
func cpuTime() time.Duration { return 0 }
