package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary be the loopback floor's echo process.
func TestMain(m *testing.M) {
	if os.Getenv("TANDEM_BENCH_ECHO") == "1" {
		if err := ServeEcho(context.Background(), os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The floor measures both parts, each operation timed, and sums the p50s;
// the echo process ends with the connection.
func TestMeasureFloor(t *testing.T) {
	t.Setenv("TANDEM_BENCH_ECHO", "1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := MeasureFloor(ctx, FloorOptions{Dir: t.TempDir(), Echo: []string{os.Args[0]}, DiskOps: 40, RoundTrips: 200})
	if err != nil {
		if strings.Contains(err.Error(), "refuses O_DIRECT") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	if f.DiskOps != 40 || f.RoundTrips != 200 {
		t.Fatalf("%+v", f)
	}
	if f.DiskP50us <= 0 || f.DiskP50us > f.DiskP99us || f.DiskP99us > f.DiskMaxUs || f.RTTP50us <= 0 || f.RTTP50us > f.RTTMaxUs {
		t.Fatalf("quantiles out of order: %+v", f)
	}
	if f.SumP50us != f.DiskP50us+f.RTTP50us {
		t.Fatalf("sum %v of %v and %v", f.SumP50us, f.DiskP50us, f.RTTP50us)
	}
}

// An echo command that prints no address fails the measurement with a
// clear error instead of hanging.
func TestMeasureFloorBadEcho(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := MeasureFloor(ctx, FloorOptions{Dir: t.TempDir(), Echo: []string{"true"}, DiskOps: 5, RoundTrips: 5})
	if err == nil || !strings.Contains(err.Error(), "printed no address") {
		t.Fatalf("err %v", err)
	}
	if _, err := MeasureFloor(ctx, FloorOptions{Dir: "/nonexistent/dir", Echo: []string{"true"}}); err == nil || !strings.Contains(err.Error(), "disk floor") {
		t.Fatalf("err %v", err)
	}
}
