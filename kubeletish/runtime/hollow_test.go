package runtime

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/kubeish/kubeish/kubeletish/network"
)

func TestHollowSandboxAddresses(t *testing.T) {
	ctx := context.Background()
	h := NewHollow()
	if _, err := h.RunSandbox(ctx, PodRef{UID: "u0"}, false); !errors.Is(err, network.ErrNoPodCIDR) {
		t.Fatalf("without a pod CIDR: err = %v, want ErrNoPodCIDR", err)
	}
	if sb, err := h.RunSandbox(ctx, PodRef{UID: "host"}, true); err != nil || sb.IP != "" {
		t.Fatalf("a host-network sandbox needs no CIDR: %+v, %v", sb, err)
	}
	if err := h.SetPodCIDR("10.1.2.0/29"); err != nil {
		t.Fatal(err)
	}
	if err := h.SetPodCIDR("10.1.3.0/29"); err == nil {
		t.Fatal("a node's pod CIDR must not change")
	}
	// /29: .0 network, .1 gateway, .7 broadcast; .2–.6 for pods.
	var got []string
	for i := 0; i < 5; i++ {
		sb, err := h.RunSandbox(ctx, PodRef{UID: fmt.Sprint("u", i)}, false)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, sb.IP)
	}
	if fmt.Sprint(got) != "[10.1.2.2 10.1.2.3 10.1.2.4 10.1.2.5 10.1.2.6]" {
		t.Fatalf("addresses %v", got)
	}
	if sb, _ := h.RunSandbox(ctx, PodRef{UID: "u1"}, false); sb.IP != "10.1.2.3" {
		t.Fatalf("RunSandbox of an existing sandbox gave %s, want its address", sb.IP)
	}
	if _, err := h.RunSandbox(ctx, PodRef{UID: "full"}, false); err == nil {
		t.Fatal("the range is full: want an error")
	}
	if err := h.RemoveSandbox(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if sb, err := h.RunSandbox(ctx, PodRef{UID: "u5"}, false); err != nil || sb.IP != "10.1.2.3" {
		t.Fatalf("a freed address is given again: %+v, %v", sb, err)
	}
}

func TestHollowContainers(t *testing.T) {
	ctx := context.Background()
	h := NewHollow()
	_ = h.SetPodCIDR("10.1.2.0/24")
	pod := PodRef{UID: "u", Namespace: "ns", Name: "p"}
	if _, err := h.StartContainer(ctx, nil, ContainerConfig{Pod: pod, Name: "c"}); err == nil {
		t.Fatal("a container without a sandbox must not start")
	}
	sb, _ := h.RunSandbox(ctx, pod, false)
	id, err := h.StartContainer(ctx, sb, ContainerConfig{Pod: pod, Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if code, _, err := h.Exec(ctx, id, []string{"anything"}, 0); code != 0 || err != nil {
		t.Fatalf("exec in a running hollow container: %d, %v", code, err)
	}
	cs, _ := h.ListContainers(ctx, "u")
	if len(cs) != 1 || cs[0].State != StateRunning {
		t.Fatalf("containers %+v", cs)
	}
	_ = h.StopContainer(ctx, id, 0)
	cs, _ = h.ListContainers(ctx, "")
	if cs[0].State != StateExited || cs[0].ExitCode != 0 {
		t.Fatalf("stopped: %+v", cs[0])
	}
	_ = h.RemoveContainer(ctx, id)
	if cs, _ = h.ListContainers(ctx, ""); len(cs) != 0 {
		t.Fatalf("removed: %+v", cs)
	}
}
