package pod

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/kubeish/kubeish/kubeletish/runtime"
)

// ErrImagePullBackOff: an earlier pull of the image failed and its
// back-off has not passed; no pull was tried.
var ErrImagePullBackOff = errors.New("back-off pulling image")

// ImagePuller makes containers' images present, backing off after failed
// pulls as the kubelet does: the failing pull reports ErrImagePull, and
// until the back-off (10 s doubling to 5 min, per pod and image) has
// passed the container waits as ImagePullBackOff without pulling again,
// so a wrong name or an unreachable registry is not hammered every sync.
type ImagePuller struct {
	Initial, Max time.Duration

	rt      runtime.Runtime
	clock   clock.PassiveClock
	mu      sync.Mutex
	entries map[pullKey]pullEntry
}

type pullKey struct {
	uid   types.UID
	image string
}

type pullEntry struct {
	failedAt time.Time
	delay    time.Duration
}

// NewImagePuller returns the kubelet's image pull back-off over rt.
func NewImagePuller(rt runtime.Runtime, c clock.PassiveClock) *ImagePuller {
	return &ImagePuller{Initial: 10 * time.Second, Max: 5 * time.Minute, rt: rt, clock: c, entries: map[pullKey]pullEntry{}}
}

// Ensure makes c's image present per its pull policy. On failure it
// returns the container's waiting state (ErrImageNeverPull, ErrImagePull
// or ImagePullBackOff) with the error.
func (p *ImagePuller) Ensure(ctx context.Context, pod *v1.Pod, c *v1.Container) (v1.ContainerStateWaiting, error) {
	policy := runtime.PullPolicy(c.ImagePullPolicy)
	if policy == "" {
		policy = runtime.PullIfNotPresent
	}
	key := pullKey{pod.UID, c.Image}
	p.mu.Lock()
	e, backingOff := p.entries[key]
	p.mu.Unlock()
	now := p.clock.Now()
	if backingOff && now.Before(e.failedAt.Add(e.delay)) {
		// An image imported meanwhile is used at once, as the kubelet
		// looks for the image before it looks at the back-off.
		if policy != runtime.PullAlways {
			if _, err := p.rt.EnsureImage(ctx, c.Image, runtime.PullNever); err == nil {
				p.forget(key)
				return v1.ContainerStateWaiting{}, nil
			}
		}
		return v1.ContainerStateWaiting{Reason: ReasonImagePullBackOff, Message: fmt.Sprintf("Back-off pulling image %q", c.Image)},
			fmt.Errorf("%w %q", ErrImagePullBackOff, c.Image)
	}
	_, err := p.rt.EnsureImage(ctx, c.Image, policy)
	switch {
	case err == nil:
		p.forget(key)
		return v1.ContainerStateWaiting{}, nil
	case errors.Is(err, runtime.ErrImageNeverPull):
		return v1.ContainerStateWaiting{Reason: ReasonErrImageNeverPull, Message: fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)}, err
	case ctx.Err() != nil:
		return v1.ContainerStateWaiting{}, err // the agent is stopping: not the image's fault
	}
	p.mu.Lock()
	d := p.Initial
	if backingOff {
		d = min(2*e.delay, p.Max)
	}
	p.entries[key] = pullEntry{failedAt: now, delay: d}
	p.mu.Unlock()
	return v1.ContainerStateWaiting{Reason: ReasonErrImagePull, Message: err.Error()}, err
}

// Delay is the current back-off of the pod's image (0: none).
func (p *ImagePuller) Delay(uid types.UID, image string) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.entries[pullKey{uid, image}].delay
}

// Forget drops a pod's back-offs (it is gone).
func (p *ImagePuller) Forget(uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.entries {
		if k.uid == uid {
			delete(p.entries, k)
		}
	}
}

func (p *ImagePuller) forget(k pullKey) {
	p.mu.Lock()
	delete(p.entries, k)
	p.mu.Unlock()
}
