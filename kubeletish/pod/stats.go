package pod

import (
	"context"
	"sort"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubeish/kubeish/kubeletish/runtime"
	"github.com/kubeish/kubeish/kubeletish/stats"
)

// StatsPods implements stats.PodLister: the node's pods known to the API
// that have running containers, with their cgroups. It lists the runtime
// (not the last relist) so a scrape sees containers started since.
func (m *Manager) StatsPods(ctx context.Context) ([]stats.Pod, error) {
	if !m.Synced() {
		return nil, nil // no pods known yet (and the indexer is being set up)
	}
	cs, err := m.cfg.Runtime.ListContainers(ctx, "")
	if err != nil {
		return nil, err
	}
	byPod := map[types.UID][]runtime.Container{}
	for _, c := range cs {
		if c.State == runtime.StateRunning {
			uid := types.UID(c.Pod.UID)
			byPod[uid] = append(byPod[uid], c)
		}
	}
	out := make([]stats.Pod, 0, len(byPod))
	for uid, running := range byPod {
		pod := m.podByUID(uid)
		if pod == nil {
			continue // being removed: no longer the API's
		}
		out = append(out, statsPod(pod, m.cgroupParent(uid), running))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// statsPod pairs a pod with its running containers' cgroups.
func statsPod(pod *v1.Pod, cgroup string, running []runtime.Container) stats.Pod {
	sp := stats.Pod{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID), CgroupPath: cgroup}
	if pod.Status.StartTime != nil {
		sp.StartTime = pod.Status.StartTime.Time
	}
	sort.Slice(running, func(i, j int) bool { return running[i].Name < running[j].Name })
	for _, c := range running {
		sp.Containers = append(sp.Containers, stats.Container{Name: c.Name, StartTime: c.StartedAt,
			CgroupPath: runtime.ContainerCgroup(cgroup, c.ID)})
	}
	return sp
}
