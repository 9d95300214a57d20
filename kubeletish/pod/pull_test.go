package pod

import (
	"context"
	"errors"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kubeish/kubeish/kubeletish/runtime"
)

// countingRuntime counts the pulls tried (present-image lookups aside).
type countingRuntime struct {
	*runtime.Fake
	pulls int
}

func (c *countingRuntime) EnsureImage(ctx context.Context, ref string, policy runtime.PullPolicy) (string, error) {
	_, present := c.Fake.EnsureImage(ctx, ref, runtime.PullNever)
	if policy == runtime.PullAlways || (policy == runtime.PullIfNotPresent && present != nil) {
		c.pulls++
	}
	return c.Fake.EnsureImage(ctx, ref, policy)
}

func TestImagePuller(t *testing.T) {
	type step struct {
		at        time.Duration // since the start
		pullErr   error         // the registry's answer
		addImage  bool          // imported before this step
		want      string        // waiting reason ("" : ready)
		wantPulls int           // pulls tried so far
		wantDelay time.Duration // back-off after the step
	}
	broken := errors.New("registry says no")
	for _, tc := range []struct {
		name   string
		policy v1.PullPolicy
		steps  []step
	}{
		{"a good pull", v1.PullIfNotPresent, []step{{at: 0, want: "", wantPulls: 1}}},
		{"failing pulls back off, doubling", v1.PullIfNotPresent, []step{
			{at: 0, pullErr: broken, want: ReasonErrImagePull, wantPulls: 1, wantDelay: 10 * time.Second},
			{at: 5 * time.Second, pullErr: broken, want: ReasonImagePullBackOff, wantPulls: 1, wantDelay: 10 * time.Second},
			{at: 10 * time.Second, pullErr: broken, want: ReasonErrImagePull, wantPulls: 2, wantDelay: 20 * time.Second},
			{at: 29 * time.Second, pullErr: broken, want: ReasonImagePullBackOff, wantPulls: 2, wantDelay: 20 * time.Second},
			{at: 30 * time.Second, pullErr: broken, want: ReasonErrImagePull, wantPulls: 3, wantDelay: 40 * time.Second},
			// The registry heals: the next try after the back-off pulls and resets it.
			{at: 70 * time.Second, want: "", wantPulls: 4, wantDelay: 0},
		}},
		{"the back-off stops at 5 min", v1.PullAlways, []step{
			{at: 0, pullErr: broken, want: ReasonErrImagePull, wantPulls: 1, wantDelay: 10 * time.Second},
			{at: time.Hour, pullErr: broken, want: ReasonErrImagePull, wantPulls: 2, wantDelay: 20 * time.Second},
			{at: 2 * time.Hour, pullErr: broken, want: ReasonErrImagePull, wantPulls: 3, wantDelay: 40 * time.Second},
			{at: 3 * time.Hour, pullErr: broken, want: ReasonErrImagePull, wantPulls: 4, wantDelay: 80 * time.Second},
			{at: 4 * time.Hour, pullErr: broken, want: ReasonErrImagePull, wantPulls: 5, wantDelay: 160 * time.Second},
			{at: 5 * time.Hour, pullErr: broken, want: ReasonErrImagePull, wantPulls: 6, wantDelay: 5 * time.Minute},
			{at: 6 * time.Hour, pullErr: broken, want: ReasonErrImagePull, wantPulls: 7, wantDelay: 5 * time.Minute},
		}},
		{"an image imported during the back-off is used at once", v1.PullIfNotPresent, []step{
			{at: 0, pullErr: broken, want: ReasonErrImagePull, wantPulls: 1, wantDelay: 10 * time.Second},
			{at: time.Second, addImage: true, want: "", wantPulls: 1, wantDelay: 0},
		}},
		{"Never with the image absent", v1.PullNever, []step{
			{at: 0, want: ReasonErrImageNeverPull, wantPulls: 0},
			{at: time.Second, want: ReasonErrImageNeverPull, wantPulls: 0},
			{at: 2 * time.Second, addImage: true, want: "", wantPulls: 0},
		}},
		{"no policy means IfNotPresent", "", []step{
			{at: 0, addImage: true, want: "", wantPulls: 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Unix(1000, 0)
			clk := clocktesting.NewFakePassiveClock(start)
			rt := &countingRuntime{Fake: runtime.NewFake()}
			p := NewImagePuller(rt, clk)
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "u1", Name: "p", Namespace: "ns"}}
			c := &v1.Container{Name: "c", Image: "registry.local/app:v1", ImagePullPolicy: tc.policy}
			for i, s := range tc.steps {
				clk.SetTime(start.Add(s.at))
				rt.PullErr = s.pullErr
				if s.addImage {
					rt.AddImage(c.Image)
				}
				w, err := p.Ensure(context.Background(), pod, c)
				if w.Reason != s.want || (err == nil) != (s.want == "") {
					t.Fatalf("step %d: waiting %+v, err %v; want %q", i, w, err, s.want)
				}
				if s.want == ReasonImagePullBackOff && !errors.Is(err, ErrImagePullBackOff) {
					t.Errorf("step %d: err %v is not ErrImagePullBackOff", i, err)
				}
				if rt.pulls != s.wantPulls {
					t.Errorf("step %d: %d pulls tried, want %d", i, rt.pulls, s.wantPulls)
				}
				if d := p.Delay(pod.UID, c.Image); d != s.wantDelay {
					t.Errorf("step %d: back-off %v, want %v", i, d, s.wantDelay)
				}
			}
		})
	}
	t.Run("Forget drops a pod's back-offs", func(t *testing.T) {
		rt := &countingRuntime{Fake: runtime.NewFake()}
		rt.PullErr = errors.New("no")
		p := NewImagePuller(rt, clocktesting.NewFakePassiveClock(time.Unix(0, 0)))
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "u2"}}
		_, _ = p.Ensure(context.Background(), pod, &v1.Container{Image: "x:v1"})
		p.Forget("u2")
		if d := p.Delay("u2", "x:v1"); d != 0 {
			t.Errorf("delay %v after Forget", d)
		}
	})
}
