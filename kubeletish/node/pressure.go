package node

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Thresholds are the kubelet's hard eviction signals that set the node's
// pressure conditions (kubelet defaults: memory.available<100Mi,
// nodefs.available<10%). kubeish reports pressure; it does not evict.
type Thresholds struct {
	// MemoryAvailable is the least memory available before MemoryPressure.
	MemoryAvailable resource.Quantity
	// DiskAvailablePercent is the least share of the root dir's
	// filesystem free before DiskPressure.
	DiskAvailablePercent float64
}

// DefaultThresholds are the kubelet's defaults.
func DefaultThresholds() Thresholds {
	return Thresholds{MemoryAvailable: resource.MustParse("100Mi"), DiskAvailablePercent: 10}
}

// Usage is what the pressure conditions are computed from.
type Usage struct {
	// MemoryAvailable is /proc/meminfo's MemAvailable, in bytes.
	MemoryAvailable int64
	// DiskAvailable and DiskTotal are the root dir's filesystem, in bytes.
	DiskAvailable, DiskTotal int64
}

// condition is one computed condition, before timestamps.
type condition struct {
	Type    v1.NodeConditionType
	Status  v1.ConditionStatus
	Reason  string
	Message string
}

// PressureConditions computes MemoryPressure and DiskPressure from usage,
// with the kubelet's reasons and messages. A reading that failed (err) is
// reported as Unknown, never as a guess.
func PressureConditions(u Usage, err error, t Thresholds) []condition {
	if err != nil {
		msg := "kubelet cannot read node usage: " + err.Error()
		return []condition{
			{v1.NodeMemoryPressure, v1.ConditionUnknown, "NodeStatusUnknown", msg},
			{v1.NodeDiskPressure, v1.ConditionUnknown, "NodeStatusUnknown", msg},
		}
	}
	var out []condition
	if u.MemoryAvailable < t.MemoryAvailable.Value() {
		out = append(out, condition{v1.NodeMemoryPressure, v1.ConditionTrue, "KubeletHasInsufficientMemory",
			fmt.Sprintf("kubelet has insufficient memory available: %s < %s", resource.NewQuantity(u.MemoryAvailable, resource.BinarySI), &t.MemoryAvailable)})
	} else {
		out = append(out, condition{v1.NodeMemoryPressure, v1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"})
	}
	if u.DiskTotal > 0 && float64(u.DiskAvailable)*100 < t.DiskAvailablePercent*float64(u.DiskTotal) {
		out = append(out, condition{v1.NodeDiskPressure, v1.ConditionTrue, "KubeletHasDiskPressure",
			fmt.Sprintf("kubelet has disk pressure: %.1f%% of the node's filesystem available, less than %.0f%%", float64(u.DiskAvailable)*100/float64(u.DiskTotal), t.DiskAvailablePercent)})
	} else {
		out = append(out, condition{v1.NodeDiskPressure, v1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"})
	}
	return out
}

// ReadUsage reads the machine's available memory and the free space of
// the filesystem holding dir.
func ReadUsage(dir string) (Usage, error) {
	var u Usage
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return u, err
	}
	defer f.Close()
	found := false
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return u, fmt.Errorf("/proc/meminfo MemAvailable: %w", err)
			}
			u.MemoryAvailable, found = kb*1024, true
			break
		}
	}
	if !found {
		return u, fmt.Errorf("/proc/meminfo has no MemAvailable")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return u, fmt.Errorf("statfs %s: %w", dir, err)
	}
	u.DiskAvailable = int64(st.Bavail) * st.Bsize
	u.DiskTotal = int64(st.Blocks) * st.Bsize
	return u, nil
}
