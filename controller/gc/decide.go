package gc

import "k8s.io/apimachinery/pkg/types"

// OwnerState is what the collector knows of one owner of an object.
type OwnerState int

// Owner states.
const (
	// Solid: the owner exists and is not waiting on its dependents.
	Solid OwnerState = iota
	// Absent: no object with the reference's uid exists.
	Absent
	// Waiting: the owner is being deleted in the foreground, waiting for
	// its dependents to go first.
	Waiting
)

// Owner is one owner reference's uid and state.
type Owner struct {
	UID   types.UID
	State OwnerState
}

// Action is what to do with a dependent.
type Action struct {
	// RemoveRefs: drop these owner references and keep the object.
	RemoveRefs []types.UID
	// Delete the object; Foreground propagation when set (it has
	// dependents of its own that its waiting owner must outlive).
	Delete     bool
	Foreground bool
}

// Decide is the collector's rule for a dependent with owners: any solid
// owner keeps it (references to absent or waiting owners are removed, so
// those owners can finish); otherwise it goes, in the foreground when a
// waiting owner needs its own dependents gone first.
func Decide(owners []Owner, hasDependents bool) Action {
	var solid, waiting bool
	var drop []types.UID
	for _, o := range owners {
		switch o.State {
		case Solid:
			solid = true
		case Waiting:
			waiting = true
			drop = append(drop, o.UID)
		case Absent:
			drop = append(drop, o.UID)
		}
	}
	switch {
	case len(owners) == 0 || len(drop) == 0:
		return Action{}
	case solid:
		return Action{RemoveRefs: drop}
	default:
		return Action{Delete: true, Foreground: waiting && hasDependents}
	}
}
