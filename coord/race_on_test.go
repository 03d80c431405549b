//go:build race

package coord

// raceEnabled is true under the race detector.
const raceEnabled = true
