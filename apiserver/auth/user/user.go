// Package user is who made an API request, as the authentication filter
// found it and the authorizer, the limits and the handlers read it from
// the request's context.
package user

import (
	"context"
	"slices"
)

// Well-known users and groups, as Kubernetes names them.
const (
	Anonymous          = "system:anonymous"
	AllUnauthenticated = "system:unauthenticated"
	AllAuthenticated   = "system:authenticated"
	MastersGroup       = "system:masters"
	NodesGroup         = "system:nodes"
	NodeUserPrefix     = "system:node:"
	// Unsecured is the user of the development-only plain-HTTP listener
	// (--insecure-listen-address): a member of system:masters.
	Unsecured = "system:unsecured"
)

// Info is an authenticated (or anonymous) user.
type Info struct {
	Name   string
	UID    string
	Groups []string
}

// InGroup reports whether u is in group g.
func (u *Info) InGroup(g string) bool { return u != nil && slices.Contains(u.Groups, g) }

type key struct{}

// With returns ctx carrying u.
func With(ctx context.Context, u *Info) context.Context { return context.WithValue(ctx, key{}, u) }

// From returns the request's user, or nil when no authentication ran.
func From(ctx context.Context) *Info {
	u, _ := ctx.Value(key{}).(*Info)
	return u
}
