package main

import "testing"

func TestByteSizeFlag(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		show string
	}{
		{"64kB", 64 << 10, "64kB"},
		{"256MB", 256 << 20, "256MB"},
		{"1 gb", 1 << 30, "1GB"},
		{"1500", 1500, "1500B"},
		{"-1", -1, "-1B"},
		{"2TB", 2 << 40, "2TB"},
		{"16MiB", 16 << 20, "16MB"},
	} {
		var n int64
		if err := (byteSize{&n}).Set(c.in); err != nil || n != c.want {
			t.Errorf("Set(%q) = %d, %v; want %d", c.in, n, err, c.want)
		}
		if s := (byteSize{&n}).String(); s != c.show {
			t.Errorf("String(%d) = %q, want %q", n, s, c.show)
		}
	}
	for _, bad := range []string{"", "kB", "1.5MB", "64 KiBs", "lots", "99999999999TB"} {
		var n int64
		if err := (byteSize{&n}).Set(bad); err == nil {
			t.Errorf("Set(%q) = %d, want an error", bad, n)
		}
	}
}
