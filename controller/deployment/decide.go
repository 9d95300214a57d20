package deployment

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
)

// ResolveFenceposts turns maxSurge and maxUnavailable (ints or
// percentages of replicas) into counts: surge rounds up, unavailable rounds
// down, and if both come to zero unavailable is one, so a rollout can always
// move.
func ResolveFenceposts(maxSurge, maxUnavailable *intstr.IntOrString, replicas int32) (surge, unavailable int32, err error) {
	s, err := intstr.GetScaledValueFromIntOrPercent(intstr.ValueOrDefault(maxSurge, intstr.FromString("25%")), int(replicas), true)
	if err != nil {
		return 0, 0, fmt.Errorf("maxSurge: %w", err)
	}
	u, err := intstr.GetScaledValueFromIntOrPercent(intstr.ValueOrDefault(maxUnavailable, intstr.FromString("25%")), int(replicas), false)
	if err != nil {
		return 0, 0, fmt.Errorf("maxUnavailable: %w", err)
	}
	if s == 0 && u == 0 {
		u = 1
	}
	return int32(s), int32(u), nil
}

// NewRSReplicas is the size of the new ReplicaSet on one rolling-update
// step: grow it by what the surge allows over the pods that exist
// (currentTotal, the sum of every set's spec.replicas), never past
// replicas.
func NewRSReplicas(replicas, surge, currentTotal, newRS int32) int32 {
	if newRS >= replicas {
		return replicas
	}
	room := replicas + surge - currentTotal
	if room <= 0 {
		return newRS
	}
	return min(newRS+room, replicas)
}

// MaxOldScaleDown is how many old pods a rolling-update step may remove:
// the pods over the minimum that must stay available, less the new set's
// pods that are not available yet (which may never become so).
func MaxOldScaleDown(allPods, minAvailable, newRSSpec, newRSAvailable int32) int32 {
	return max(allPods-minAvailable-(newRSSpec-newRSAvailable), 0)
}

// RSCount is a ReplicaSet's size and available pods, for the pure steps.
type RSCount struct {
	Spec, Available int32
}

// ScaleDownOld returns new sizes for old sets (oldest first) on one
// rolling-update step: first remove their unavailable pods, up to
// maxScaleDown, then available ones while more than minAvailable pods stay
// available overall (availableTotal counts every set, new included).
func ScaleDownOld(old []RSCount, maxScaleDown, availableTotal, minAvailable int32) []int32 {
	out := make([]int32, len(old))
	budget := maxScaleDown
	for i, rs := range old {
		out[i] = rs.Spec
		unhealthy := max(rs.Spec-rs.Available, 0)
		n := min(unhealthy, budget)
		out[i] -= n
		budget -= n
	}
	avail := min(availableTotal-minAvailable, budget)
	for i := range old {
		if avail <= 0 {
			break
		}
		n := min(out[i], avail)
		out[i] -= n
		avail -= n
	}
	return out
}

// Proportions spreads delta (positive or negative) over sets of the given
// sizes in proportion to each size; what rounding leaves goes to the first
// (the caller orders them: largest first). No size drops below zero.
func Proportions(sizes []int32, delta int32) []int32 {
	out := append([]int32(nil), sizes...)
	var total int64
	for _, s := range sizes {
		total += int64(s)
	}
	if len(sizes) == 0 || delta == 0 {
		return out
	}
	if total == 0 {
		out[0] = max(out[0]+delta, 0)
		return out
	}
	left := delta
	for i, s := range sizes {
		part := int32(int64(s) * int64(delta) / total)
		if out[i]+part < 0 {
			part = -out[i]
		}
		out[i] += part
		left -= part
	}
	for i := 0; left != 0 && i < len(out); i++ {
		n := left
		if out[i]+n < 0 {
			n = -out[i]
		}
		out[i] += n
		left -= n
	}
	return out
}

// TemplateHash is the pod-template-hash of a template: fnv32a over its JSON
// encoding and the collision count, safe-encoded like Kubernetes' hashes.
func TemplateHash(t *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	b, _ := json.Marshal(t)
	h.Write(b)
	if collisionCount != nil {
		var c [4]byte
		binary.LittleEndian.PutUint32(c[:], uint32(*collisionCount))
		h.Write(c[:])
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// Complete reports whether a rollout is done: every replica updated and
// available, no old pods left, and the latest spec observed.
func Complete(d *appsv1.Deployment, st *appsv1.DeploymentStatus) bool {
	r := replicas(d)
	return st.UpdatedReplicas == r && st.Replicas == r && st.AvailableReplicas == r && st.ObservedGeneration >= d.Generation
}

// Progressed reports whether cur shows progress over prev: more updated,
// ready or available pods, or fewer old ones.
func Progressed(prev, cur *appsv1.DeploymentStatus) bool {
	oldPrev, oldCur := prev.Replicas-prev.UpdatedReplicas, cur.Replicas-cur.UpdatedReplicas
	return cur.UpdatedReplicas > prev.UpdatedReplicas || oldCur < oldPrev ||
		cur.ReadyReplicas > prev.ReadyReplicas || cur.AvailableReplicas > prev.AvailableReplicas
}

func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}
