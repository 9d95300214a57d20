package node

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

// TestRenewLease: the first renewal creates the Lease; later ones update
// the copy last written, one request each; a Lease changed by someone
// else is read again and then renewed.
func TestRenewLease(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	a := New(Config{Name: "n1", Client: cs, Clock: clk, LeaseInterval: 5 * time.Second})
	verbs := func() []string {
		var out []string
		for _, act := range cs.Actions() {
			if act.GetResource().Resource == "leases" {
				out = append(out, act.GetVerb())
			}
		}
		cs.ClearActions()
		return out
	}
	check := func(step string, want ...string) {
		t.Helper()
		got := verbs()
		if len(got) != len(want) {
			t.Fatalf("%s: requests %v, want %v", step, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: requests %v, want %v", step, got, want)
			}
		}
		l, err := cs.CoordinationV1().Leases(LeaseNamespace).Get(ctx, "n1", metav1.GetOptions{})
		cs.ClearActions()
		if err != nil || !l.Spec.RenewTime.Time.Equal(clk.Now()) || *l.Spec.LeaseDurationSeconds != 20 || *l.Spec.HolderIdentity != "n1" {
			t.Fatalf("%s: lease %+v, %v", step, l, err)
		}
	}
	if err := a.RenewLease(ctx); err != nil {
		t.Fatal(err)
	}
	check("first", "get", "create")
	clk.Step(5 * time.Second)
	if err := a.RenewLease(ctx); err != nil {
		t.Fatal(err)
	}
	check("second", "update")

	// Someone else deletes it: the cached update fails, the agent reads
	// again and creates it.
	if err := cs.CoordinationV1().Leases(LeaseNamespace).Delete(ctx, "n1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cs.ClearActions()
	clk.Step(5 * time.Second)
	if err := a.RenewLease(ctx); err != nil {
		t.Fatal(err)
	}
	check("after a delete", "update", "get", "create")
}
