package leaderelection

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/pkg/testenv"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name                string
		enabled             bool
		lease, renew, retry time.Duration
		ok                  bool
	}{
		{"defaults", true, 15 * time.Second, 10 * time.Second, 2 * time.Second, true},
		{"lease not above renew", true, 10 * time.Second, 10 * time.Second, 2 * time.Second, false},
		{"renew not above retry", true, 15 * time.Second, 2 * time.Second, 2 * time.Second, false},
		{"disabled: anything goes", false, 0, 0, 0, true},
	} {
		o := NewOptions("x")
		o.Enabled, o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = tc.enabled, tc.lease, tc.renew, tc.retry
		if err := o.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v", tc.name, err)
		}
	}
}

func TestRun(t *testing.T) {
	env := testenv.Start(t)
	log := zap.NewNop()

	// Disabled: run at once, reported as leading.
	o := NewOptions("test")
	o.Enabled = false
	ran, leading := false, false
	if err := o.Run(context.Background(), env.Client, log, func(context.Context) { ran = true }, func(b bool) { leading = b }); err != nil || !ran || !leading {
		t.Fatalf("disabled: err %v, ran %v, leading %v", err, ran, leading)
	}

	// Enabled: the first process leads; a second waits until the first
	// stops (and releases), then leads.
	newOpts := func(id string) *Options {
		o := NewOptions("test")
		o.Identity, o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = id, 3*time.Second, 2*time.Second, 200*time.Millisecond
		return o
	}
	ctxA, stopA := context.WithCancel(context.Background())
	startedA := make(chan struct{})
	doneA := make(chan error, 1)
	go func() {
		doneA <- newOpts("a").Run(ctxA, env.Client, log, func(ctx context.Context) { close(startedA); <-ctx.Done() }, nil)
	}()
	select {
	case <-startedA:
	case <-time.After(10 * time.Second):
		t.Fatal("a never led")
	}
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	startedB := make(chan struct{})
	doneB := make(chan error, 1)
	go func() {
		doneB <- newOpts("b").Run(ctxB, env.Client, log, func(ctx context.Context) { close(startedB); <-ctx.Done() }, nil)
	}()
	select {
	case <-startedB:
		t.Fatal("b led while a held the lease")
	case <-time.After(time.Second):
	}
	stopA()
	if err := <-doneA; err != nil {
		t.Errorf("a: %v", err)
	}
	start := time.Now()
	select {
	case <-startedB:
	case <-time.After(5 * time.Second):
		t.Fatal("b did not lead after a released the lease")
	}
	// A released lease is taken on b's next retry, well before it expires.
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("b led %s after a stopped; a released lease should be taken on the next retry", took)
	}
	l, err := env.Client.CoordinationV1().Leases("kube-system").Get(context.Background(), "test", metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != "b" {
		t.Errorf("lease holder: %v %v", l, err)
	}
	stopB()
	if err := <-doneB; err != nil {
		t.Errorf("b: %v", err)
	}
}
