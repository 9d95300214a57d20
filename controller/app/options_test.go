package app

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"short test timings", []string{"--node-monitor-grace-period=2s", "--pod-eviction-timeout=2s", "--bind-address=127.0.0.1:0"}, ""},
		{"bad cidr", []string{"--cluster-cidr=nonsense"}, "--cluster-cidr"},
		{"mask shorter than cluster", []string{"--cluster-cidr=10.244.0.0/16", "--node-cidr-mask-size=8"}, "mask size 8"},
		{"no cidr check when not allocating", []string{"--allocate-node-cidrs=false", "--cluster-cidr=nonsense"}, ""},
		{"zero workers", []string{"--concurrent-replicaset-syncs=0"}, "--concurrent-replicaset-syncs must be at least 1"},
		{"zero grace", []string{"--node-monitor-grace-period=0s"}, "--node-monitor-grace-period must be positive"},
		{"lease not above renew", []string{"--leader-elect-lease-duration=5s", "--leader-elect-renew-deadline=5s"}, "--leader-elect-lease-duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOptions()
			fs := pflag.NewFlagSet("controller", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := o.Validate()
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
	o := NewOptions()
	if o.BindAddress != ":10257" || o.ClusterCIDR != "10.244.0.0/16" || o.NodeCIDRMaskSize != 24 ||
		o.NodeMonitorGracePeriod != 20*time.Second || o.PodEvictionTimeout != 30*time.Second || !o.LeaderElection.Enabled {
		t.Errorf("defaults %+v", o)
	}
}
