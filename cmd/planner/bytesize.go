package main

import (
	"fmt"
	"strconv"
	"strings"
)

// byteSize is a flag holding a size in bytes, written as PostgreSQL writes
// memory settings: a number with an optional unit B, kB, MB, GB or TB
// (multiples of 1024; KiB, MiB, GiB and TiB too), e.g. 64kB or 256MB;
// negative values pass through (for "no limit").
type byteSize struct{ n *int64 }

var sizeUnits = []struct {
	name string
	mult int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1}}

func (b byteSize) Set(s string) error {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if len(num) > len(u.name) && strings.EqualFold(num[len(num)-len(u.name):], u.name) {
			num, mult = strings.TrimSpace(num[:len(num)-len(u.name)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > (1<<62)/mult || n < -(1<<62)/mult {
		return fmt.Errorf("%q is not a size: want a whole number with an optional unit B, kB, MB, GB or TB (e.g. 64kB, 256MB)", s)
	}
	*b.n = n * mult
	return nil
}

func (b byteSize) String() string {
	if b.n == nil {
		return ""
	}
	for _, u := range sizeUnits {
		if *b.n != 0 && *b.n%u.mult == 0 && !strings.HasSuffix(u.name, "iB") {
			return strconv.FormatInt(*b.n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(*b.n, 10)
}

func (byteSize) Type() string { return "size" }
