package app

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestOptionsValidate(t *testing.T) {
	cases := []struct {
		args []string
		want string // "" = valid
	}{
		{nil, ""},
		{[]string{"--percentage-of-nodes-to-score=101"}, "--percentage-of-nodes-to-score"},
		{[]string{"--parallelism=0"}, "--parallelism"},
		{[]string{"--max-inflight-binds=0"}, "--max-inflight-binds"},
		{[]string{"--score-weights=SelectorSpread=5,NodeAffinity=0"}, ""},
		{[]string{"--score-weights=ImageLocality=1"}, "unknown score plugin"},
		{[]string{"--pod-initial-backoff=20s"}, "--pod-initial-backoff"},
		{[]string{"--leader-elect-renew-deadline=20s"}, "--leader-elect-lease-duration"},
		{[]string{"--leader-elect=false", "--leader-elect-renew-deadline=20s"}, ""},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o := NewOptions()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := o.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
