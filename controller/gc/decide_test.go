package gc

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name          string
		owners        []Owner
		hasDependents bool
		want          Action
	}{
		{"no owners", nil, false, Action{}},
		{"owner exists", []Owner{{"a", Solid}}, false, Action{}},
		{"owner gone", []Owner{{"a", Absent}}, false, Action{Delete: true}},
		{"all owners gone", []Owner{{"a", Absent}, {"b", Absent}}, true, Action{Delete: true}},
		{"one of two gone: drop its reference", []Owner{{"a", Solid}, {"b", Absent}}, false, Action{RemoveRefs: []types.UID{"b"}}},
		{"owner waiting, leaf", []Owner{{"a", Waiting}}, false, Action{Delete: true}},
		{"owner waiting, with dependents: foreground", []Owner{{"a", Waiting}}, true, Action{Delete: true, Foreground: true}},
		{"waiting and solid: release the waiting one", []Owner{{"a", Waiting}, {"b", Solid}}, true, Action{RemoveRefs: []types.UID{"a"}}},
		{"waiting and gone", []Owner{{"a", Waiting}, {"b", Absent}}, true, Action{Delete: true, Foreground: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Decide(tc.owners, tc.hasDependents)
			if got.Delete != tc.want.Delete || got.Foreground != tc.want.Foreground || !slices.Equal(got.RemoveRefs, tc.want.RemoveRefs) {
				t.Errorf("= %+v, want %+v", got, tc.want)
			}
		})
	}
}
