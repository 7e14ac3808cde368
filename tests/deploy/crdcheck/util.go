package main

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// Prometheus durations: one or more <number><unit>, unit in y w d h m s ms.
var promDuration = regexp.MustCompile(`^(([0-9]+)(ms|y|w|d|h|m|s))+$`)
var promPart = regexp.MustCompile(`([0-9]+)(ms|y|w|d|h|m|s)`)

func parsePromDuration(s string) (time.Duration, error) {
	if !promDuration.MatchString(s) {
		return 0, fmt.Errorf("%q is not a Prometheus duration", s)
	}
	units := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute,
		"h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "y": 365 * 24 * time.Hour}
	var total time.Duration
	for _, m := range promPart.FindAllStringSubmatch(s, -1) {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return 0, err
		}
		total += time.Duration(n) * units[m[2]]
	}
	return total, nil
}
