package node

import (
	"errors"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestPressureConditions(t *testing.T) {
	const mi = 1 << 20
	th := DefaultThresholds()
	for _, tc := range []struct {
		name     string
		u        Usage
		err      error
		mem      v1.ConditionStatus
		disk     v1.ConditionStatus
		contains string
	}{
		{"plenty", Usage{MemoryAvailable: 4096 * mi, DiskAvailable: 50, DiskTotal: 100}, nil, v1.ConditionFalse, v1.ConditionFalse, "sufficient memory"},
		{"memory just at the threshold", Usage{MemoryAvailable: 100 * mi, DiskAvailable: 50, DiskTotal: 100}, nil, v1.ConditionFalse, v1.ConditionFalse, ""},
		{"memory below", Usage{MemoryAvailable: 99 * mi, DiskAvailable: 50, DiskTotal: 100}, nil, v1.ConditionTrue, v1.ConditionFalse, "99Mi < 100Mi"},
		{"disk at 10%", Usage{MemoryAvailable: 4096 * mi, DiskAvailable: 10, DiskTotal: 100}, nil, v1.ConditionFalse, v1.ConditionFalse, ""},
		{"disk below 10%", Usage{MemoryAvailable: 4096 * mi, DiskAvailable: 9, DiskTotal: 100}, nil, v1.ConditionFalse, v1.ConditionTrue, "9.0% of the node's filesystem"},
		{"both", Usage{MemoryAvailable: 1 * mi, DiskAvailable: 0, DiskTotal: 100}, nil, v1.ConditionTrue, v1.ConditionTrue, ""},
		{"unreadable", Usage{}, errors.New("no /proc"), v1.ConditionUnknown, v1.ConditionUnknown, "no /proc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PressureConditions(tc.u, tc.err, th)
			if len(got) != 2 || got[0].Type != v1.NodeMemoryPressure || got[1].Type != v1.NodeDiskPressure {
				t.Fatalf("got %+v", got)
			}
			if got[0].Status != tc.mem || got[1].Status != tc.disk {
				t.Fatalf("memory %s disk %s, want %s %s (%+v)", got[0].Status, got[1].Status, tc.mem, tc.disk, got)
			}
			if tc.contains != "" && !strings.Contains(got[0].Message+" "+got[1].Message, tc.contains) {
				t.Fatalf("messages %q / %q lack %q", got[0].Message, got[1].Message, tc.contains)
			}
		})
	}
	// A custom threshold moves the line.
	th.MemoryAvailable = resource.MustParse("1Gi")
	if got := PressureConditions(Usage{MemoryAvailable: 512 * mi, DiskTotal: 1, DiskAvailable: 1}, nil, th); got[0].Status != v1.ConditionTrue {
		t.Fatalf("512Mi under a 1Gi threshold: %+v", got[0])
	}
}

func TestReadUsage(t *testing.T) {
	u, err := ReadUsage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if u.MemoryAvailable <= 0 || u.DiskTotal <= 0 || u.DiskAvailable < 0 || u.DiskAvailable > u.DiskTotal {
		t.Fatalf("implausible usage %+v", u)
	}
	if _, err := ReadUsage("/does/not/exist"); err == nil {
		t.Fatal("statfs of a missing dir succeeded")
	}
}
